from sqlml.postgres import privileges

return privileges.run_pending(plpy)
