{{ config(materialized='table') }}
-- the new customers, scored by the serving version
select id, predicted_churned, predicted_churned_probs
from {{ sqlml.predict(ref('churn_model'), ref('new_customers')) }}
