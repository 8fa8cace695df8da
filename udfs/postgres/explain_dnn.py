from sqlml.postgres import dnn_gradients, server

return server.call(plpy, dnn_gradients.explain_batch, onnx_sha256, steps, classes, features)
