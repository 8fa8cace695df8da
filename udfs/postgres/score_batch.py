from sqlml.postgres import server

return server.call(plpy, server.score_batch, graph_sha256, features)
