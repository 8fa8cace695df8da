import sqlml

return sqlml.__version__
