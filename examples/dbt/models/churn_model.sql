{{ config(
    materialized='sqlml_model',
    ml_config={'model_type': var('model_type', 'logistic_reg'), 'input_label_cols': ['churned']},
    retrain='if_changed',
    deploy={'policy': 'if_better', 'metric': 'roc_auc'}
) }}
select tenure, monthly_spend, plan, lifetime_spend, churned
from {{ ref('customer_features') }}
where churned is not null
