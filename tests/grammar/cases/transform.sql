-- Golden cases for TRANSFORM (...) of CREATE MODEL: items as typed TransformItems.

-- case: bigquery_style_transform
CREATE OR REPLACE MODEL shop.churn
  TRANSFORM (
    ML.STANDARD_SCALER(tenure) OVER () AS tenure_std,
    ML.MIN_MAX_SCALER(spend) OVER () AS spend_mm,
    ML.IMPUTER(spend, 'median') OVER () AS spend_imputed,
    ML.ONE_HOT_ENCODER(plan) OVER () AS plan_oh,
    ML.BUCKETIZE(tenure, [12, 24, 48]) AS tenure_bucket,
    churned
  )
  OPTIONS (model_type = 'logistic_reg', input_label_cols = ['churned'])
AS SELECT * FROM shop.customers
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
  "options": {"model_type": "logistic_reg", "input_label_cols": ["churned"]},
  "query": {"type": "Query", "sql": "SELECT * FROM shop.customers"},
  "replace": true,
  "if_not_exists": false,
  "transform": [
    {
      "type": "TransformItem",
      "alias": "tenure_std",
      "function": "standard_scaler",
      "expression": {"type": "Col", "name": "tenure"},
      "args": [],
      "source": "ML.STANDARD_SCALER(tenure) OVER () AS tenure_std"
    },
    {
      "type": "TransformItem",
      "alias": "spend_mm",
      "function": "min_max_scaler",
      "expression": {"type": "Col", "name": "spend"},
      "args": [],
      "source": "ML.MIN_MAX_SCALER(spend) OVER () AS spend_mm"
    },
    {
      "type": "TransformItem",
      "alias": "spend_imputed",
      "function": "imputer",
      "expression": {"type": "Col", "name": "spend"},
      "args": ["median"],
      "source": "ML.IMPUTER(spend, 'median') OVER () AS spend_imputed"
    },
    {
      "type": "TransformItem",
      "alias": "plan_oh",
      "function": "one_hot_encoder",
      "expression": {"type": "Col", "name": "plan"},
      "args": [],
      "source": "ML.ONE_HOT_ENCODER(plan) OVER () AS plan_oh"
    },
    {
      "type": "TransformItem",
      "alias": "tenure_bucket",
      "function": "bucketize",
      "expression": {"type": "Col", "name": "tenure"},
      "args": [[12, 24, 48], false],
      "source": "ML.BUCKETIZE(tenure, [12, 24, 48]) AS tenure_bucket"
    },
    {
      "type": "TransformItem",
      "alias": "churned",
      "function": "column",
      "expression": {"type": "Col", "name": "churned"},
      "args": [],
      "source": "churned"
    }
  ],
  "transform_sql": "ML.STANDARD_SCALER(tenure) OVER () AS tenure_std,\n    ML.MIN_MAX_SCALER(spend) OVER () AS spend_mm,\n    ML.IMPUTER(spend, 'median') OVER () AS spend_imputed,\n    ML.ONE_HOT_ENCODER(plan) OVER () AS plan_oh,\n    ML.BUCKETIZE(tenure, [12, 24, 48]) AS tenure_bucket,\n    churned"
}

-- case: plain_and_renamed_columns
CREATE MODEL m TRANSFORM (a, b AS bee, "Mixed Case" AS mc, label) OPTIONS (model_type = 'linear_reg')
AS SELECT * FROM t
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "options": {"model_type": "linear_reg"},
  "query": {"type": "Query", "sql": "SELECT * FROM t"},
  "replace": false,
  "if_not_exists": false,
  "transform": [
    {
      "type": "TransformItem",
      "alias": "a",
      "function": "column",
      "expression": {"type": "Col", "name": "a"},
      "args": [],
      "source": "a"
    },
    {
      "type": "TransformItem",
      "alias": "bee",
      "function": "column",
      "expression": {"type": "Col", "name": "b"},
      "args": [],
      "source": "b AS bee"
    },
    {
      "type": "TransformItem",
      "alias": "mc",
      "function": "column",
      "expression": {"type": "Col", "name": "Mixed Case"},
      "args": [],
      "source": "\"Mixed Case\" AS mc"
    },
    {
      "type": "TransformItem",
      "alias": "label",
      "function": "column",
      "expression": {"type": "Col", "name": "label"},
      "args": [],
      "source": "label"
    }
  ],
  "transform_sql": "a, b AS bee, \"Mixed Case\" AS mc, label"
}

-- case: arithmetic_expressions
CREATE MODEL m TRANSFORM (
  tenure * 12 AS months,
  -x AS neg_x,
  -2.5 AS constant,
  (a + b) / 2 AS mean_ab,
  a - b - c AS left_assoc,
  x ^ 2 AS squared,
  POW(x, 3) AS cubed,
  POWER(x, 0.5) AS root,
  LOG(x) AS log10_x,
  LOG(2, x) AS log2_x,
  LN(x + 1) AS ln_x,
  LOG10(x) AS also_log10,
  EXP(x) AS e_x,
  SQRT(ABS(x)) AS sqrt_abs,
  FLOOR(x) AS f, CEIL(x) AS c, CEILING(x) AS c2, ROUND(x) AS r, SIGN(x) AS s,
  GREATEST(a, b, 0) AS g, LEAST(a, 1) AS l,
  CAST(x AS DOUBLE) AS xd, CAST(x AS INTEGER) AS xi, NULL AS nothing,
  label
) OPTIONS (model_type = 'linear_reg') AS SELECT * FROM t
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "options": {"model_type": "linear_reg"},
  "query": {"type": "Query", "sql": "SELECT * FROM t"},
  "replace": false,
  "if_not_exists": false,
  "transform": [
    {
      "type": "TransformItem",
      "alias": "months",
      "function": "expression",
      "expression": {
        "type": "BinOp",
        "op": "*",
        "left": {"type": "Col", "name": "tenure"},
        "right": {"type": "Lit", "value": 12}
      },
      "args": [],
      "source": "tenure * 12 AS months"
    },
    {
      "type": "TransformItem",
      "alias": "neg_x",
      "function": "expression",
      "expression": {"type": "Neg", "operand": {"type": "Col", "name": "x"}},
      "args": [],
      "source": "-x AS neg_x"
    },
    {
      "type": "TransformItem",
      "alias": "constant",
      "function": "expression",
      "expression": {"type": "Lit", "value": -2.5},
      "args": [],
      "source": "-2.5 AS constant"
    },
    {
      "type": "TransformItem",
      "alias": "mean_ab",
      "function": "expression",
      "expression": {
        "type": "BinOp",
        "op": "/",
        "left": {
          "type": "BinOp",
          "op": "+",
          "left": {"type": "Col", "name": "a"},
          "right": {"type": "Col", "name": "b"}
        },
        "right": {"type": "Lit", "value": 2}
      },
      "args": [],
      "source": "(a + b) / 2 AS mean_ab"
    },
    {
      "type": "TransformItem",
      "alias": "left_assoc",
      "function": "expression",
      "expression": {
        "type": "BinOp",
        "op": "-",
        "left": {
          "type": "BinOp",
          "op": "-",
          "left": {"type": "Col", "name": "a"},
          "right": {"type": "Col", "name": "b"}
        },
        "right": {"type": "Col", "name": "c"}
      },
      "args": [],
      "source": "a - b - c AS left_assoc"
    },
    {
      "type": "TransformItem",
      "alias": "squared",
      "function": "expression",
      "expression": {
        "type": "BinOp",
        "op": "^",
        "left": {"type": "Col", "name": "x"},
        "right": {"type": "Lit", "value": 2}
      },
      "args": [],
      "source": "x ^ 2 AS squared"
    },
    {
      "type": "TransformItem",
      "alias": "cubed",
      "function": "expression",
      "expression": {
        "type": "BinOp",
        "op": "^",
        "left": {"type": "Col", "name": "x"},
        "right": {"type": "Lit", "value": 3}
      },
      "args": [],
      "source": "POW(x, 3) AS cubed"
    },
    {
      "type": "TransformItem",
      "alias": "root",
      "function": "expression",
      "expression": {
        "type": "BinOp",
        "op": "^",
        "left": {"type": "Col", "name": "x"},
        "right": {"type": "Lit", "value": 0.5}
      },
      "args": [],
      "source": "POWER(x, 0.5) AS root"
    },
    {
      "type": "TransformItem",
      "alias": "log10_x",
      "function": "expression",
      "expression": {"type": "Call", "name": "log10", "args": [{"type": "Col", "name": "x"}]},
      "args": [],
      "source": "LOG(x) AS log10_x"
    },
    {
      "type": "TransformItem",
      "alias": "log2_x",
      "function": "expression",
      "expression": {
        "type": "Call",
        "name": "log",
        "args": [{"type": "Col", "name": "x"}, {"type": "Lit", "value": 2}]
      },
      "args": [],
      "source": "LOG(2, x) AS log2_x"
    },
    {
      "type": "TransformItem",
      "alias": "ln_x",
      "function": "expression",
      "expression": {
        "type": "Call",
        "name": "ln",
        "args": [
          {
            "type": "BinOp",
            "op": "+",
            "left": {"type": "Col", "name": "x"},
            "right": {"type": "Lit", "value": 1}
          }
        ]
      },
      "args": [],
      "source": "LN(x + 1) AS ln_x"
    },
    {
      "type": "TransformItem",
      "alias": "also_log10",
      "function": "expression",
      "expression": {
        "type": "Call",
        "name": "log",
        "args": [{"type": "Col", "name": "x"}, {"type": "Lit", "value": 10}]
      },
      "args": [],
      "source": "LOG10(x) AS also_log10"
    },
    {
      "type": "TransformItem",
      "alias": "e_x",
      "function": "expression",
      "expression": {"type": "Call", "name": "exp", "args": [{"type": "Col", "name": "x"}]},
      "args": [],
      "source": "EXP(x) AS e_x"
    },
    {
      "type": "TransformItem",
      "alias": "sqrt_abs",
      "function": "expression",
      "expression": {
        "type": "Call",
        "name": "sqrt",
        "args": [{"type": "Call", "name": "abs", "args": [{"type": "Col", "name": "x"}]}]
      },
      "args": [],
      "source": "SQRT(ABS(x)) AS sqrt_abs"
    },
    {
      "type": "TransformItem",
      "alias": "f",
      "function": "expression",
      "expression": {"type": "Call", "name": "floor", "args": [{"type": "Col", "name": "x"}]},
      "args": [],
      "source": "FLOOR(x) AS f"
    },
    {
      "type": "TransformItem",
      "alias": "c",
      "function": "expression",
      "expression": {"type": "Call", "name": "ceil", "args": [{"type": "Col", "name": "x"}]},
      "args": [],
      "source": "CEIL(x) AS c"
    },
    {
      "type": "TransformItem",
      "alias": "c2",
      "function": "expression",
      "expression": {"type": "Call", "name": "ceil", "args": [{"type": "Col", "name": "x"}]},
      "args": [],
      "source": "CEILING(x) AS c2"
    },
    {
      "type": "TransformItem",
      "alias": "r",
      "function": "expression",
      "expression": {"type": "Call", "name": "round", "args": [{"type": "Col", "name": "x"}]},
      "args": [],
      "source": "ROUND(x) AS r"
    },
    {
      "type": "TransformItem",
      "alias": "s",
      "function": "expression",
      "expression": {"type": "Call", "name": "sign", "args": [{"type": "Col", "name": "x"}]},
      "args": [],
      "source": "SIGN(x) AS s"
    },
    {
      "type": "TransformItem",
      "alias": "g",
      "function": "expression",
      "expression": {
        "type": "Call",
        "name": "greatest",
        "args": [
          {"type": "Col", "name": "a"},
          {"type": "Col", "name": "b"},
          {"type": "Lit", "value": 0}
        ]
      },
      "args": [],
      "source": "GREATEST(a, b, 0) AS g"
    },
    {
      "type": "TransformItem",
      "alias": "l",
      "function": "expression",
      "expression": {
        "type": "Call",
        "name": "least",
        "args": [{"type": "Col", "name": "a"}, {"type": "Lit", "value": 1}]
      },
      "args": [],
      "source": "LEAST(a, 1) AS l"
    },
    {
      "type": "TransformItem",
      "alias": "xd",
      "function": "expression",
      "expression": {"type": "Call", "name": "cast_double", "args": [{"type": "Col", "name": "x"}]},
      "args": [],
      "source": "CAST(x AS DOUBLE) AS xd"
    },
    {
      "type": "TransformItem",
      "alias": "xi",
      "function": "expression",
      "expression": {"type": "Call", "name": "round", "args": [{"type": "Col", "name": "x"}]},
      "args": [],
      "source": "CAST(x AS INTEGER) AS xi"
    },
    {
      "type": "TransformItem",
      "alias": "nothing",
      "function": "expression",
      "expression": {"type": "Lit", "value": null},
      "args": [],
      "source": "NULL AS nothing"
    },
    {
      "type": "TransformItem",
      "alias": "label",
      "function": "column",
      "expression": {"type": "Col", "name": "label"},
      "args": [],
      "source": "label"
    }
  ],
  "transform_sql": "tenure * 12 AS months,\n  -x AS neg_x,\n  -2.5 AS constant,\n  (a + b) / 2 AS mean_ab,\n  a - b - c AS left_assoc,\n  x ^ 2 AS squared,\n  POW(x, 3) AS cubed,\n  POWER(x, 0.5) AS root,\n  LOG(x) AS log10_x,\n  LOG(2, x) AS log2_x,\n  LN(x + 1) AS ln_x,\n  LOG10(x) AS also_log10,\n  EXP(x) AS e_x,\n  SQRT(ABS(x)) AS sqrt_abs,\n  FLOOR(x) AS f, CEIL(x) AS c, CEILING(x) AS c2, ROUND(x) AS r, SIGN(x) AS s,\n  GREATEST(a, b, 0) AS g, LEAST(a, 1) AS l,\n  CAST(x AS DOUBLE) AS xd, CAST(x AS INTEGER) AS xi, NULL AS nothing,\n  label"
}

-- case: extract_parts
CREATE MODEL m TRANSFORM (EXTRACT(DAYOFWEEK FROM d) AS dow, extract(isoweek from ts) AS w,
  EXTRACT(WEEK(MONDAY) FROM d) AS wm, EXTRACT(MICROSECOND FROM tm) * 2 AS us, label)
OPTIONS (model_type = 'linear_reg') AS SELECT * FROM t
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "options": {"model_type": "linear_reg"},
  "query": {"type": "Query", "sql": "SELECT * FROM t"},
  "replace": false,
  "if_not_exists": false,
  "transform": [
    {
      "type": "TransformItem",
      "alias": "dow",
      "function": "expression",
      "expression": {
        "type": "Call",
        "name": "extract",
        "args": [{"type": "Lit", "value": "DAYOFWEEK"}, {"type": "Col", "name": "d"}]
      },
      "args": [],
      "source": "EXTRACT(DAYOFWEEK FROM d) AS dow"
    },
    {
      "type": "TransformItem",
      "alias": "w",
      "function": "expression",
      "expression": {
        "type": "Call",
        "name": "extract",
        "args": [{"type": "Lit", "value": "ISOWEEK"}, {"type": "Col", "name": "ts"}]
      },
      "args": [],
      "source": "extract(isoweek from ts) AS w"
    },
    {
      "type": "TransformItem",
      "alias": "wm",
      "function": "expression",
      "expression": {
        "type": "Call",
        "name": "extract",
        "args": [{"type": "Lit", "value": "WEEK(MONDAY)"}, {"type": "Col", "name": "d"}]
      },
      "args": [],
      "source": "EXTRACT(WEEK(MONDAY) FROM d) AS wm"
    },
    {
      "type": "TransformItem",
      "alias": "us",
      "function": "expression",
      "expression": {
        "type": "BinOp",
        "op": "*",
        "left": {
          "type": "Call",
          "name": "extract",
          "args": [{"type": "Lit", "value": "MICROSECOND"}, {"type": "Col", "name": "tm"}]
        },
        "right": {"type": "Lit", "value": 2}
      },
      "args": [],
      "source": "EXTRACT(MICROSECOND FROM tm) * 2 AS us"
    },
    {
      "type": "TransformItem",
      "alias": "label",
      "function": "column",
      "expression": {"type": "Col", "name": "label"},
      "args": [],
      "source": "label"
    }
  ],
  "transform_sql": "EXTRACT(DAYOFWEEK FROM d) AS dow, extract(isoweek from ts) AS w,\n  EXTRACT(WEEK(MONDAY) FROM d) AS wm, EXTRACT(MICROSECOND FROM tm) * 2 AS us, label"
}

-- case: postgres_cast_syntax
-- dialects: postgres
CREATE MODEL m TRANSFORM (x::float8 AS xd, (x / 2)::int AS half, label)
OPTIONS (model_type = 'linear_reg') AS SELECT * FROM t
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "options": {"model_type": "linear_reg"},
  "query": {"type": "Query", "sql": "SELECT * FROM t"},
  "replace": false,
  "if_not_exists": false,
  "transform": [
    {
      "type": "TransformItem",
      "alias": "xd",
      "function": "expression",
      "expression": {"type": "Call", "name": "cast_double", "args": [{"type": "Col", "name": "x"}]},
      "args": [],
      "source": "x::float8 AS xd"
    },
    {
      "type": "TransformItem",
      "alias": "half",
      "function": "expression",
      "expression": {
        "type": "Call",
        "name": "round",
        "args": [
          {
            "type": "BinOp",
            "op": "/",
            "left": {"type": "Col", "name": "x"},
            "right": {"type": "Lit", "value": 2}
          }
        ]
      },
      "args": [],
      "source": "(x / 2)::int AS half"
    },
    {
      "type": "TransformItem",
      "alias": "label",
      "function": "column",
      "expression": {"type": "Col", "name": "label"},
      "args": [],
      "source": "label"
    }
  ],
  "transform_sql": "x::float8 AS xd, (x / 2)::int AS half, label"
}

-- case: analytic_function_arguments
CREATE MODEL m TRANSFORM (
  ML.IMPUTER(x, 'MEAN') OVER () AS x_mean,
  ML.IMPUTER(plan, 'most_frequent') OVER () AS plan_mf,
  ML.ONE_HOT_ENCODER(plan, 'most_frequent') OVER () AS plan_drop,
  ML.ONE_HOT_ENCODER(plan, 'none', 10, 2) OVER () AS plan_top,
  ML.ONE_HOT_ENCODER(plan, NULL, 5) OVER () AS plan_k,
  ML.STANDARD_SCALER(LOG(x + 1)) OVER () AS log_std,
  ML.BUCKETIZE(x, [-1.5, 0, 2.5], TRUE) AS x_bucket,
  ML.BUCKETIZE(x, [1], false, 'bucket_names') AS x_half,
  label
) OPTIONS (model_type = 'logistic_reg') AS SELECT * FROM t
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "options": {"model_type": "logistic_reg"},
  "query": {"type": "Query", "sql": "SELECT * FROM t"},
  "replace": false,
  "if_not_exists": false,
  "transform": [
    {
      "type": "TransformItem",
      "alias": "x_mean",
      "function": "imputer",
      "expression": {"type": "Col", "name": "x"},
      "args": ["mean"],
      "source": "ML.IMPUTER(x, 'MEAN') OVER () AS x_mean"
    },
    {
      "type": "TransformItem",
      "alias": "plan_mf",
      "function": "imputer",
      "expression": {"type": "Col", "name": "plan"},
      "args": ["most_frequent"],
      "source": "ML.IMPUTER(plan, 'most_frequent') OVER () AS plan_mf"
    },
    {
      "type": "TransformItem",
      "alias": "plan_drop",
      "function": "one_hot_encoder",
      "expression": {"type": "Col", "name": "plan"},
      "args": ["most_frequent"],
      "source": "ML.ONE_HOT_ENCODER(plan, 'most_frequent') OVER () AS plan_drop"
    },
    {
      "type": "TransformItem",
      "alias": "plan_top",
      "function": "one_hot_encoder",
      "expression": {"type": "Col", "name": "plan"},
      "args": ["none", 10, 2],
      "source": "ML.ONE_HOT_ENCODER(plan, 'none', 10, 2) OVER () AS plan_top"
    },
    {
      "type": "TransformItem",
      "alias": "plan_k",
      "function": "one_hot_encoder",
      "expression": {"type": "Col", "name": "plan"},
      "args": [null, 5],
      "source": "ML.ONE_HOT_ENCODER(plan, NULL, 5) OVER () AS plan_k"
    },
    {
      "type": "TransformItem",
      "alias": "log_std",
      "function": "standard_scaler",
      "expression": {
        "type": "Call",
        "name": "log10",
        "args": [
          {
            "type": "BinOp",
            "op": "+",
            "left": {"type": "Col", "name": "x"},
            "right": {"type": "Lit", "value": 1}
          }
        ]
      },
      "args": [],
      "source": "ML.STANDARD_SCALER(LOG(x + 1)) OVER () AS log_std"
    },
    {
      "type": "TransformItem",
      "alias": "x_bucket",
      "function": "bucketize",
      "expression": {"type": "Col", "name": "x"},
      "args": [[-1.5, 0, 2.5], true],
      "source": "ML.BUCKETIZE(x, [-1.5, 0, 2.5], TRUE) AS x_bucket"
    },
    {
      "type": "TransformItem",
      "alias": "x_half",
      "function": "bucketize",
      "expression": {"type": "Col", "name": "x"},
      "args": [[1], false],
      "source": "ML.BUCKETIZE(x, [1], false, 'bucket_names') AS x_half"
    },
    {
      "type": "TransformItem",
      "alias": "label",
      "function": "column",
      "expression": {"type": "Col", "name": "label"},
      "args": [],
      "source": "label"
    }
  ],
  "transform_sql": "ML.IMPUTER(x, 'MEAN') OVER () AS x_mean,\n  ML.IMPUTER(plan, 'most_frequent') OVER () AS plan_mf,\n  ML.ONE_HOT_ENCODER(plan, 'most_frequent') OVER () AS plan_drop,\n  ML.ONE_HOT_ENCODER(plan, 'none', 10, 2) OVER () AS plan_top,\n  ML.ONE_HOT_ENCODER(plan, NULL, 5) OVER () AS plan_k,\n  ML.STANDARD_SCALER(LOG(x + 1)) OVER () AS log_std,\n  ML.BUCKETIZE(x, [-1.5, 0, 2.5], TRUE) AS x_bucket,\n  ML.BUCKETIZE(x, [1], false, 'bucket_names') AS x_half,\n  label"
}

-- case: keywords_in_lower_case
create model m transform (ml.standard_scaler(x) over () as x, label) options (model_type='linear_reg') as select * from t
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "options": {"model_type": "linear_reg"},
  "query": {"type": "Query", "sql": "select * from t"},
  "replace": false,
  "if_not_exists": false,
  "transform": [
    {
      "type": "TransformItem",
      "alias": "x",
      "function": "standard_scaler",
      "expression": {"type": "Col", "name": "x"},
      "args": [],
      "source": "ml.standard_scaler(x) over () as x"
    },
    {
      "type": "TransformItem",
      "alias": "label",
      "function": "column",
      "expression": {"type": "Col", "name": "label"},
      "args": [],
      "source": "label"
    }
  ],
  "transform_sql": "ml.standard_scaler(x) over () as x, label"
}

-- case: scalers_encoders_and_expansions
CREATE MODEL m TRANSFORM (ML.MAX_ABS_SCALER(x) OVER () AS xa, ML.ROBUST_SCALER(x, [10, 90], FALSE) OVER () AS xr, ML.QUANTILE_BUCKETIZE(x, 4) OVER () AS xq, ML.LABEL_ENCODER(s, 100) OVER () AS sl, ML.POLYNOMIAL_EXPAND(STRUCT(x, y AS w), 3) AS p, ML.FEATURE_CROSS(STRUCT(s, t)) AS c, ML.NORMALIZER([x, y * 2], CAST('+INF' AS DOUBLE)) AS n, label) OPTIONS (model_type = 'linear_reg') AS SELECT * FROM t
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "options": {"model_type": "linear_reg"},
  "query": {"type": "Query", "sql": "SELECT * FROM t"},
  "replace": false,
  "if_not_exists": false,
  "transform": [
    {
      "type": "TransformItem",
      "alias": "xa",
      "function": "max_abs_scaler",
      "expression": {"type": "Col", "name": "x"},
      "args": [],
      "source": "ML.MAX_ABS_SCALER(x) OVER () AS xa"
    },
    {
      "type": "TransformItem",
      "alias": "xr",
      "function": "robust_scaler",
      "expression": {"type": "Col", "name": "x"},
      "args": [[10, 90], false, true],
      "source": "ML.ROBUST_SCALER(x, [10, 90], FALSE) OVER () AS xr"
    },
    {
      "type": "TransformItem",
      "alias": "xq",
      "function": "quantile_bucketize",
      "expression": {"type": "Col", "name": "x"},
      "args": [4],
      "source": "ML.QUANTILE_BUCKETIZE(x, 4) OVER () AS xq"
    },
    {
      "type": "TransformItem",
      "alias": "sl",
      "function": "label_encoder",
      "expression": {"type": "Col", "name": "s"},
      "args": [100, 5],
      "source": "ML.LABEL_ENCODER(s, 100) OVER () AS sl"
    },
    {
      "type": "TransformItem",
      "alias": "p",
      "function": "polynomial_expand",
      "expression": {"type": "Col", "name": "x"},
      "args": [3],
      "source": "ML.POLYNOMIAL_EXPAND(STRUCT(x, y AS w), 3) AS p",
      "inputs": [["x", {"type": "Col", "name": "x"}], ["w", {"type": "Col", "name": "y"}]]
    },
    {
      "type": "TransformItem",
      "alias": "c",
      "function": "feature_cross",
      "expression": {"type": "Col", "name": "s"},
      "args": [2],
      "source": "ML.FEATURE_CROSS(STRUCT(s, t)) AS c",
      "inputs": [["s", {"type": "Col", "name": "s"}], ["t", {"type": "Col", "name": "t"}]]
    },
    {
      "type": "TransformItem",
      "alias": "n",
      "function": "normalizer",
      "expression": {"type": "Col", "name": "x"},
      "args": [Infinity],
      "source": "ML.NORMALIZER([x, y * 2], CAST('+INF' AS DOUBLE)) AS n",
      "inputs": [
        ["1", {"type": "Col", "name": "x"}],
        [
          "2",
          {
            "type": "BinOp",
            "op": "*",
            "left": {"type": "Col", "name": "y"},
            "right": {"type": "Lit", "value": 2}
          }
        ]
      ]
    },
    {
      "type": "TransformItem",
      "alias": "label",
      "function": "column",
      "expression": {"type": "Col", "name": "label"},
      "args": [],
      "source": "label"
    }
  ],
  "transform_sql": "ML.MAX_ABS_SCALER(x) OVER () AS xa, ML.ROBUST_SCALER(x, [10, 90], FALSE) OVER () AS xr, ML.QUANTILE_BUCKETIZE(x, 4) OVER () AS xq, ML.LABEL_ENCODER(s, 100) OVER () AS sl, ML.POLYNOMIAL_EXPAND(STRUCT(x, y AS w), 3) AS p, ML.FEATURE_CROSS(STRUCT(s, t)) AS c, ML.NORMALIZER([x, y * 2], CAST('+INF' AS DOUBLE)) AS n, label"
}

-- case: case_if_coalesce
CREATE MODEL m TRANSFORM (CASE x WHEN 1 THEN 2 END AS a, IF(x IS NOT NULL AND y <> 0, x / y, 0) AS b, COALESCE(x, y, 0) AS c, label) OPTIONS (model_type = 'linear_reg') AS SELECT * FROM t
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "options": {"model_type": "linear_reg"},
  "query": {"type": "Query", "sql": "SELECT * FROM t"},
  "replace": false,
  "if_not_exists": false,
  "transform": [
    {
      "type": "TransformItem",
      "alias": "a",
      "function": "expression",
      "expression": {
        "type": "Call",
        "name": "case",
        "args": [
          {
            "type": "Call",
            "name": "eq",
            "args": [{"type": "Col", "name": "x"}, {"type": "Lit", "value": 1}]
          },
          {"type": "Lit", "value": 2},
          {"type": "Lit", "value": null}
        ]
      },
      "args": [],
      "source": "CASE x WHEN 1 THEN 2 END AS a"
    },
    {
      "type": "TransformItem",
      "alias": "b",
      "function": "expression",
      "expression": {
        "type": "Call",
        "name": "case",
        "args": [
          {
            "type": "Call",
            "name": "and",
            "args": [
              {
                "type": "Call",
                "name": "not",
                "args": [{"type": "Call", "name": "is_null", "args": [{"type": "Col", "name": "x"}]}]
              },
              {
                "type": "Call",
                "name": "ne",
                "args": [{"type": "Col", "name": "y"}, {"type": "Lit", "value": 0}]
              }
            ]
          },
          {
            "type": "BinOp",
            "op": "/",
            "left": {"type": "Col", "name": "x"},
            "right": {"type": "Col", "name": "y"}
          },
          {"type": "Lit", "value": 0}
        ]
      },
      "args": [],
      "source": "IF(x IS NOT NULL AND y <> 0, x / y, 0) AS b"
    },
    {
      "type": "TransformItem",
      "alias": "c",
      "function": "expression",
      "expression": {
        "type": "Call",
        "name": "coalesce",
        "args": [
          {"type": "Col", "name": "x"},
          {"type": "Col", "name": "y"},
          {"type": "Lit", "value": 0}
        ]
      },
      "args": [],
      "source": "COALESCE(x, y, 0) AS c"
    },
    {
      "type": "TransformItem",
      "alias": "label",
      "function": "column",
      "expression": {"type": "Col", "name": "label"},
      "args": [],
      "source": "label"
    }
  ],
  "transform_sql": "CASE x WHEN 1 THEN 2 END AS a, IF(x IS NOT NULL AND y <> 0, x / y, 0) AS b, COALESCE(x, y, 0) AS c, label"
}

-- case: string_functions
CREATE MODEL m
  TRANSFORM (
    ML.ONE_HOT_ENCODER(LOWER(city)) OVER () AS city,
    CONCAT(a, '_', UPPER(b)) AS ab,
    a || b AS piped,
    CASE WHEN s = 'a' THEN 1 ELSE 0 END AS is_a,
    label
  )
  OPTIONS (model_type = 'linear_reg', input_label_cols = ['label'])
AS SELECT * FROM t
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "options": {"model_type": "linear_reg", "input_label_cols": ["label"]},
  "query": {"type": "Query", "sql": "SELECT * FROM t"},
  "replace": false,
  "if_not_exists": false,
  "transform": [
    {
      "type": "TransformItem",
      "alias": "city",
      "function": "one_hot_encoder",
      "expression": {"type": "Call", "name": "lower", "args": [{"type": "Col", "name": "city"}]},
      "args": [],
      "source": "ML.ONE_HOT_ENCODER(LOWER(city)) OVER () AS city"
    },
    {
      "type": "TransformItem",
      "alias": "ab",
      "function": "expression",
      "expression": {
        "type": "Call",
        "name": "concat",
        "args": [
          {"type": "Col", "name": "a"},
          {"type": "Lit", "value": "_"},
          {"type": "Call", "name": "upper", "args": [{"type": "Col", "name": "b"}]}
        ]
      },
      "args": [],
      "source": "CONCAT(a, '_', UPPER(b)) AS ab"
    },
    {
      "type": "TransformItem",
      "alias": "piped",
      "function": "expression",
      "expression": {
        "type": "Call",
        "name": "dpipe",
        "args": [{"type": "Col", "name": "a"}, {"type": "Col", "name": "b"}]
      },
      "args": [],
      "source": "a || b AS piped"
    },
    {
      "type": "TransformItem",
      "alias": "is_a",
      "function": "expression",
      "expression": {
        "type": "Call",
        "name": "case",
        "args": [
          {
            "type": "Call",
            "name": "eq",
            "args": [{"type": "Col", "name": "s"}, {"type": "Lit", "value": "a"}]
          },
          {"type": "Lit", "value": 1},
          {"type": "Lit", "value": 0}
        ]
      },
      "args": [],
      "source": "CASE WHEN s = 'a' THEN 1 ELSE 0 END AS is_a"
    },
    {
      "type": "TransformItem",
      "alias": "label",
      "function": "column",
      "expression": {"type": "Col", "name": "label"},
      "args": [],
      "source": "label"
    }
  ],
  "transform_sql": "ML.ONE_HOT_ENCODER(LOWER(city)) OVER () AS city,\n    CONCAT(a, '_', UPPER(b)) AS ab,\n    a || b AS piped,\n    CASE WHEN s = 'a' THEN 1 ELSE 0 END AS is_a,\n    label"
}

-- case: hash_bucketize
CREATE MODEL m TRANSFORM (ML.HASH_BUCKETIZE(city, 100) AS city_bucket, ML.HASH_BUCKETIZE(LOWER(city), 0) AS city_hash, label) OPTIONS (model_type = 'linear_reg') AS SELECT * FROM t
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "options": {"model_type": "linear_reg"},
  "query": {"type": "Query", "sql": "SELECT * FROM t"},
  "replace": false,
  "if_not_exists": false,
  "transform": [
    {
      "type": "TransformItem",
      "alias": "city_bucket",
      "function": "hash_bucketize",
      "expression": {"type": "Col", "name": "city"},
      "args": [100],
      "source": "ML.HASH_BUCKETIZE(city, 100) AS city_bucket"
    },
    {
      "type": "TransformItem",
      "alias": "city_hash",
      "function": "hash_bucketize",
      "expression": {"type": "Call", "name": "lower", "args": [{"type": "Col", "name": "city"}]},
      "args": [0],
      "source": "ML.HASH_BUCKETIZE(LOWER(city), 0) AS city_hash"
    },
    {
      "type": "TransformItem",
      "alias": "label",
      "function": "column",
      "expression": {"type": "Col", "name": "label"},
      "args": [],
      "source": "label"
    }
  ],
  "transform_sql": "ML.HASH_BUCKETIZE(city, 100) AS city_bucket, ML.HASH_BUCKETIZE(LOWER(city), 0) AS city_hash, label"
}

-- case: ngrams
CREATE MODEL m TRANSFORM (ML.NGRAMS(tags, [1, 2]) AS g, ML.NGRAMS(tags, 3, '#') AS h, y) OPTIONS (model_type = 'linear_reg') AS SELECT tags, y FROM t
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "options": {"model_type": "linear_reg"},
  "query": {"type": "Query", "sql": "SELECT tags, y FROM t"},
  "replace": false,
  "if_not_exists": false,
  "transform": [
    {
      "type": "TransformItem",
      "alias": "g",
      "function": "ngrams",
      "expression": {"type": "Col", "name": "tags"},
      "args": [1, 2, " "],
      "source": "ML.NGRAMS(tags, [1, 2]) AS g"
    },
    {
      "type": "TransformItem",
      "alias": "h",
      "function": "ngrams",
      "expression": {"type": "Col", "name": "tags"},
      "args": [3, 3, "#"],
      "source": "ML.NGRAMS(tags, 3, '#') AS h"
    },
    {
      "type": "TransformItem",
      "alias": "y",
      "function": "column",
      "expression": {"type": "Col", "name": "y"},
      "args": [],
      "source": "y"
    }
  ],
  "transform_sql": "ML.NGRAMS(tags, [1, 2]) AS g, ML.NGRAMS(tags, 3, '#') AS h, y"
}
