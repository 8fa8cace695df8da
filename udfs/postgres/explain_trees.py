from sqlml.postgres import server, treeshap

return server.call(plpy, treeshap.explain_batch, booster_sha256, approx, classes, features)
