-- the customers whose churn is not known yet
select * from {{ ref('customer_features') }} where churned is null
