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

    import os

    # Only what no ordinary role can write is executed: the two tables the code and the path
    # come from, and schema sqlml, must belong to a superuser and grant no one else a write.
    untrusted = plpy.execute(
        "SELECT c.relname::text AS name FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
        " JOIN pg_catalog.pg_roles o ON o.oid OPERATOR(pg_catalog.=) c.relowner"
        " JOIN pg_catalog.pg_roles s ON s.oid OPERATOR(pg_catalog.=) n.nspowner"
        " WHERE n.nspname OPERATOR(pg_catalog.=) 'sqlml'"
        " AND c.relname OPERATOR(pg_catalog.=) ANY (ARRAY['python_modules', 'store_info'])"
        " AND (NOT o.rolsuper OR NOT s.rolsuper OR EXISTS ("
        "  SELECT 1 FROM pg_catalog.aclexplode(COALESCE(c.relacl, '{}'))"
        "  AS a LEFT JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.grantee"
        "  WHERE a.privilege_type OPERATOR(pg_catalog.<>) ALL"
        "   (ARRAY['SELECT', 'REFERENCES']) AND NOT COALESCE(g.rolsuper, false))"
        " OR EXISTS (SELECT 1 FROM pg_catalog.aclexplode(COALESCE(n.nspacl, '{}'))"
        "  AS a LEFT JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.grantee"
        "  WHERE a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'"
        "  AND NOT COALESCE(g.rolsuper, false)))"
    )
    if untrusted:
        plpy.error(
            "sqlml will not run code that roles other than superusers can write: "
            + ", ".join("sqlml." + row["name"] for row in untrusted),
            hint="run sqlml install again as a superuser",
            sqlstate="42501",
        )
    for row in plpy.execute("SELECT key, value FROM sqlml.store_info"):
        if row["key"] != "python_path":
            continue
        for entry in reversed(json.loads(row["value"])):
            try:
                found = os.stat(entry)
            except OSError:
                continue  # a folder that does not exist is not put on the path
            # The folder and its parents (a parent may be world-writable with the sticky bit,
            # as /tmp: no one can then rename what is not theirs). What is under the folder is
            # checked by `sqlml install` (a walk of every file: too slow for every backend).
            folder, parent = entry, False
            while True:
                info = found if not parent else os.stat(folder)
                sticky = parent and info.st_mode & 0o1000
                if info.st_uid not in (0, os.geteuid()) or (info.st_mode & 0o022 and not sticky):
                    plpy.error(
                        f"python_path folder {folder} is writable by others than root and the"
                        " server",
                        hint=f"chown root {folder}; chmod go-w {folder}",
                        sqlstate="42501",
                    )
                if folder == os.path.dirname(folder):
                    break
                folder, parent = os.path.dirname(folder), True
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
