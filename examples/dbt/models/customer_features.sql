-- the features of each customer (a view: always today's rows)
select id, tenure, monthly_spend, plan, tenure * monthly_spend as lifetime_spend, churned
from {{ source('raw', 'customers') }}
