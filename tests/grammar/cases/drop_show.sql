-- Golden cases for DROP MODEL and SHOW MODELS.

-- case: drop
DROP MODEL shop.churn
-- expected:
{
  "type": "DropModel",
  "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
  "if_exists": false
}

-- case: drop_if_exists_unqualified
drop model if exists churn
-- expected:
{
  "type": "DropModel",
  "model": {"type": "ModelRef", "schema": null, "name": "churn"},
  "if_exists": true
}

-- case: drop_quoted_and_backticked
DROP MODEL "Shop".`Churn`
-- expected:
{
  "type": "DropModel",
  "model": {"type": "ModelRef", "schema": "Shop", "name": "Churn"},
  "if_exists": false
}

-- case: drop_backticked_dataset_model
DROP MODEL `Shop.churn`
-- expected:
{
  "type": "DropModel",
  "model": {"type": "ModelRef", "schema": "Shop", "name": "churn"},
  "if_exists": false
}

-- case: show_all
SHOW MODELS
-- expected:
{"type": "ShowModels", "schema": null}

-- case: show_in_schema
SHOW MODELS IN Shop
-- expected:
{"type": "ShowModels", "schema": "shop"}

-- case: show_from_quoted_schema
show models from "Shop"
-- expected:
{"type": "ShowModels", "schema": "Shop"}

-- case: drop_backticked_project_dataset_model
DROP MODEL `my-project.Shop.churn`
-- expected:
{
  "type": "DropModel",
  "model": {"type": "ModelRef", "schema": "Shop", "name": "churn", "catalog": "my-project"},
  "if_exists": false
}
