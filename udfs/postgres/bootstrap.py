# sqlml bootstrap, placed before every PL/Python body by `sqlml install`. It loads the sqlml
# package stored in sqlml.python_modules (the version installed in this database, whatever the
# server's own Python has) and puts sqlml.store_info's python_path first on sys.path for its
# dependencies. Once per backend and install: the install stamps SQLML_INSTALL_ID below, so an
# upgrade reloads sqlml in backends that had loaded the previous one.
if GD.get("sqlml_install_id") != "SQLML_INSTALL_ID":
    import importlib.abc
    import importlib.util
    import json
    import sys

    for row in plpy.execute("SELECT value FROM sqlml.store_info WHERE key = 'python_path'"):
        for entry in reversed(json.loads(row["value"])):
            if entry not in sys.path:
                sys.path.insert(0, entry)
    sources = {
        row["name"]: (row["is_package"], row["source"])
        for row in plpy.execute("SELECT name, is_package, source FROM sqlml.python_modules")
    }

    class SqlmlFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        sqlml_finder = True

        def find_spec(self, name, path=None, target=None):
            if name not in sources:
                return None
            return importlib.util.spec_from_loader(name, self, is_package=sources[name][0])

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            code = compile(sources[module.__name__][1], f"<sqlml>/{module.__name__}", "exec")
            exec(code, module.__dict__)

    for loaded in [m for m in sys.modules if m == "sqlml" or m.startswith("sqlml.")]:
        del sys.modules[loaded]
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "sqlml_finder", False)]
    sys.meta_path.insert(0, SqlmlFinder())
    GD["sqlml_install_id"] = "SQLML_INSTALL_ID"
