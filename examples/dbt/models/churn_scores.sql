{{ config(materialized='table') }}
-- the customers whose churn is not known yet, scored by the serving version
select id, predicted_churned, predicted_churned_probs
from {{ sqlml.predict(ref('churn_model'), ref('customer_features')) }}
where churned is null
