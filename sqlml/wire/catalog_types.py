# ruff: noqa: E501
"""PostgreSQL 15's built-in types, as its ``pg_type`` has them (base and pseudo types of pg_catalog).

Generated once from a PostgreSQL 15 server with::

    SELECT oid, typname, typlen, typbyval, typtype, typcategory, typispreferred, typdelim, typelem,
           typarray, typinput, typoutput, typreceive, typsend, typmodin, typmodout, typanalyze,
           typalign, typstorage, typcollation, typsubscript, format_type(oid, NULL)
    FROM pg_type WHERE typnamespace = 11 AND typtype IN ('b', 'p') ORDER BY oid

keeping the element types only: every array type of them (``_int4`` ...) follows one rule
(:func:`array_of`), which tests/test_wire_catalog.py checks against the real ``pg_type``. Clients
key their codecs on these OIDs (asyncpg, SQLAlchemy) and on the ``typreceive`` names (ADBC).
"""

from __future__ import annotations

from typing import NamedTuple


class PgType(NamedTuple):
    """One row of ``pg_type`` (the columns that vary between built-in types), plus its
    ``format_type`` name."""

    oid: int
    typname: str
    typlen: int
    typbyval: bool
    typtype: str
    typcategory: str
    typispreferred: bool
    typdelim: str
    typelem: int
    typarray: int
    typinput: str
    typoutput: str
    typreceive: str
    typsend: str
    typmodin: str
    typmodout: str
    typanalyze: str
    typalign: str
    typstorage: str
    typcollation: int
    typsubscript: str
    format: str


# oid|typname|typlen|typbyval|typtype|typcategory|typispreferred|typdelim|typelem|typarray|typinput|typoutput|typreceive|typsend|typmodin|typmodout|typanalyze|typalign|typstorage|typcollation|typsubscript|format
_ELEMENTS = """\
16|bool|1|t|b|B|t|,|0|1000|boolin|boolout|boolrecv|boolsend|-|-|-|c|p|0|-|boolean
17|bytea|-1|f|b|U|f|,|0|1001|byteain|byteaout|bytearecv|byteasend|-|-|-|i|x|0|-|bytea
18|char|1|t|b|Z|f|,|0|1002|charin|charout|charrecv|charsend|-|-|-|c|p|0|-|"char"
19|name|64|f|b|S|f|,|18|1003|namein|nameout|namerecv|namesend|-|-|-|c|p|950|raw_array_subscript_handler|name
20|int8|8|t|b|N|f|,|0|1016|int8in|int8out|int8recv|int8send|-|-|-|d|p|0|-|bigint
21|int2|2|t|b|N|f|,|0|1005|int2in|int2out|int2recv|int2send|-|-|-|s|p|0|-|smallint
22|int2vector|-1|f|b|A|f|,|21|1006|int2vectorin|int2vectorout|int2vectorrecv|int2vectorsend|-|-|-|i|p|0|array_subscript_handler|int2vector
23|int4|4|t|b|N|f|,|0|1007|int4in|int4out|int4recv|int4send|-|-|-|i|p|0|-|integer
24|regproc|4|t|b|N|f|,|0|1008|regprocin|regprocout|regprocrecv|regprocsend|-|-|-|i|p|0|-|regproc
25|text|-1|f|b|S|t|,|0|1009|textin|textout|textrecv|textsend|-|-|-|i|x|100|-|text
26|oid|4|t|b|N|t|,|0|1028|oidin|oidout|oidrecv|oidsend|-|-|-|i|p|0|-|oid
27|tid|6|f|b|U|f|,|0|1010|tidin|tidout|tidrecv|tidsend|-|-|-|s|p|0|-|tid
28|xid|4|t|b|U|f|,|0|1011|xidin|xidout|xidrecv|xidsend|-|-|-|i|p|0|-|xid
29|cid|4|t|b|U|f|,|0|1012|cidin|cidout|cidrecv|cidsend|-|-|-|i|p|0|-|cid
30|oidvector|-1|f|b|A|f|,|26|1013|oidvectorin|oidvectorout|oidvectorrecv|oidvectorsend|-|-|-|i|p|0|array_subscript_handler|oidvector
32|pg_ddl_command|8|t|p|P|f|,|0|0|pg_ddl_command_in|pg_ddl_command_out|pg_ddl_command_recv|pg_ddl_command_send|-|-|-|d|p|0|-|pg_ddl_command
114|json|-1|f|b|U|f|,|0|199|json_in|json_out|json_recv|json_send|-|-|-|i|x|0|-|json
142|xml|-1|f|b|U|f|,|0|143|xml_in|xml_out|xml_recv|xml_send|-|-|-|i|x|0|-|xml
194|pg_node_tree|-1|f|b|Z|f|,|0|0|pg_node_tree_in|pg_node_tree_out|pg_node_tree_recv|pg_node_tree_send|-|-|-|i|x|100|-|pg_node_tree
269|table_am_handler|4|t|p|P|f|,|0|0|table_am_handler_in|table_am_handler_out|-|-|-|-|-|i|p|0|-|table_am_handler
325|index_am_handler|4|t|p|P|f|,|0|0|index_am_handler_in|index_am_handler_out|-|-|-|-|-|i|p|0|-|index_am_handler
600|point|16|f|b|G|f|,|701|1017|point_in|point_out|point_recv|point_send|-|-|-|d|p|0|raw_array_subscript_handler|point
601|lseg|32|f|b|G|f|,|600|1018|lseg_in|lseg_out|lseg_recv|lseg_send|-|-|-|d|p|0|raw_array_subscript_handler|lseg
602|path|-1|f|b|G|f|,|0|1019|path_in|path_out|path_recv|path_send|-|-|-|d|x|0|-|path
603|box|32|f|b|G|f|;|600|1020|box_in|box_out|box_recv|box_send|-|-|-|d|p|0|raw_array_subscript_handler|box
604|polygon|-1|f|b|G|f|,|0|1027|poly_in|poly_out|poly_recv|poly_send|-|-|-|d|x|0|-|polygon
628|line|24|f|b|G|f|,|701|629|line_in|line_out|line_recv|line_send|-|-|-|d|p|0|raw_array_subscript_handler|line
650|cidr|-1|f|b|I|f|,|0|651|cidr_in|cidr_out|cidr_recv|cidr_send|-|-|-|i|m|0|-|cidr
700|float4|4|t|b|N|f|,|0|1021|float4in|float4out|float4recv|float4send|-|-|-|i|p|0|-|real
701|float8|8|t|b|N|t|,|0|1022|float8in|float8out|float8recv|float8send|-|-|-|d|p|0|-|double precision
705|unknown|-2|f|p|X|f|,|0|0|unknownin|unknownout|unknownrecv|unknownsend|-|-|-|c|p|0|-|unknown
718|circle|24|f|b|G|f|,|0|719|circle_in|circle_out|circle_recv|circle_send|-|-|-|d|p|0|-|circle
774|macaddr8|8|f|b|U|f|,|0|775|macaddr8_in|macaddr8_out|macaddr8_recv|macaddr8_send|-|-|-|i|p|0|-|macaddr8
790|money|8|t|b|N|f|,|0|791|cash_in|cash_out|cash_recv|cash_send|-|-|-|d|p|0|-|money
829|macaddr|6|f|b|U|f|,|0|1040|macaddr_in|macaddr_out|macaddr_recv|macaddr_send|-|-|-|i|p|0|-|macaddr
869|inet|-1|f|b|I|t|,|0|1041|inet_in|inet_out|inet_recv|inet_send|-|-|-|i|m|0|-|inet
1033|aclitem|12|f|b|U|f|,|0|1034|aclitemin|aclitemout|-|-|-|-|-|i|p|0|-|aclitem
1042|bpchar|-1|f|b|S|f|,|0|1014|bpcharin|bpcharout|bpcharrecv|bpcharsend|bpchartypmodin|bpchartypmodout|-|i|x|100|-|character
1043|varchar|-1|f|b|S|f|,|0|1015|varcharin|varcharout|varcharrecv|varcharsend|varchartypmodin|varchartypmodout|-|i|x|100|-|character varying
1082|date|4|t|b|D|f|,|0|1182|date_in|date_out|date_recv|date_send|-|-|-|i|p|0|-|date
1083|time|8|t|b|D|f|,|0|1183|time_in|time_out|time_recv|time_send|timetypmodin|timetypmodout|-|d|p|0|-|time without time zone
1114|timestamp|8|t|b|D|f|,|0|1115|timestamp_in|timestamp_out|timestamp_recv|timestamp_send|timestamptypmodin|timestamptypmodout|-|d|p|0|-|timestamp without time zone
1184|timestamptz|8|t|b|D|t|,|0|1185|timestamptz_in|timestamptz_out|timestamptz_recv|timestamptz_send|timestamptztypmodin|timestamptztypmodout|-|d|p|0|-|timestamp with time zone
1186|interval|16|f|b|T|t|,|0|1187|interval_in|interval_out|interval_recv|interval_send|intervaltypmodin|intervaltypmodout|-|d|p|0|-|interval
1266|timetz|12|f|b|D|f|,|0|1270|timetz_in|timetz_out|timetz_recv|timetz_send|timetztypmodin|timetztypmodout|-|d|p|0|-|time with time zone
1560|bit|-1|f|b|V|f|,|0|1561|bit_in|bit_out|bit_recv|bit_send|bittypmodin|bittypmodout|-|i|x|0|-|bit
1562|varbit|-1|f|b|V|t|,|0|1563|varbit_in|varbit_out|varbit_recv|varbit_send|varbittypmodin|varbittypmodout|-|i|x|0|-|bit varying
1700|numeric|-1|f|b|N|f|,|0|1231|numeric_in|numeric_out|numeric_recv|numeric_send|numerictypmodin|numerictypmodout|-|i|m|0|-|numeric
1790|refcursor|-1|f|b|U|f|,|0|2201|textin|textout|textrecv|textsend|-|-|-|i|x|0|-|refcursor
2202|regprocedure|4|t|b|N|f|,|0|2207|regprocedurein|regprocedureout|regprocedurerecv|regproceduresend|-|-|-|i|p|0|-|regprocedure
2203|regoper|4|t|b|N|f|,|0|2208|regoperin|regoperout|regoperrecv|regopersend|-|-|-|i|p|0|-|regoper
2204|regoperator|4|t|b|N|f|,|0|2209|regoperatorin|regoperatorout|regoperatorrecv|regoperatorsend|-|-|-|i|p|0|-|regoperator
2205|regclass|4|t|b|N|f|,|0|2210|regclassin|regclassout|regclassrecv|regclasssend|-|-|-|i|p|0|-|regclass
2206|regtype|4|t|b|N|f|,|0|2211|regtypein|regtypeout|regtyperecv|regtypesend|-|-|-|i|p|0|-|regtype
2249|record|-1|f|p|P|f|,|0|2287|record_in|record_out|record_recv|record_send|-|-|-|d|x|0|-|record
2275|cstring|-2|f|p|P|f|,|0|1263|cstring_in|cstring_out|cstring_recv|cstring_send|-|-|-|c|p|0|-|cstring
2276|any|4|t|p|P|f|,|0|0|any_in|any_out|-|-|-|-|-|i|p|0|-|"any"
2277|anyarray|-1|f|p|P|f|,|0|0|anyarray_in|anyarray_out|anyarray_recv|anyarray_send|-|-|-|d|x|0|-|anyarray
2278|void|4|t|p|P|f|,|0|0|void_in|void_out|void_recv|void_send|-|-|-|i|p|0|-|void
2279|trigger|4|t|p|P|f|,|0|0|trigger_in|trigger_out|-|-|-|-|-|i|p|0|-|trigger
2280|language_handler|4|t|p|P|f|,|0|0|language_handler_in|language_handler_out|-|-|-|-|-|i|p|0|-|language_handler
2281|internal|8|t|p|P|f|,|0|0|internal_in|internal_out|-|-|-|-|-|d|p|0|-|internal
2283|anyelement|4|t|p|P|f|,|0|0|anyelement_in|anyelement_out|-|-|-|-|-|i|p|0|-|anyelement
2287|_record|-1|f|p|P|f|,|2249|0|array_in|array_out|array_recv|array_send|-|-|array_typanalyze|d|x|0|array_subscript_handler|record[]
2776|anynonarray|4|t|p|P|f|,|0|0|anynonarray_in|anynonarray_out|-|-|-|-|-|i|p|0|-|anynonarray
2950|uuid|16|f|b|U|f|,|0|2951|uuid_in|uuid_out|uuid_recv|uuid_send|-|-|-|c|p|0|-|uuid
2970|txid_snapshot|-1|f|b|U|f|,|0|2949|txid_snapshot_in|txid_snapshot_out|txid_snapshot_recv|txid_snapshot_send|-|-|-|d|x|0|-|txid_snapshot
3115|fdw_handler|4|t|p|P|f|,|0|0|fdw_handler_in|fdw_handler_out|-|-|-|-|-|i|p|0|-|fdw_handler
3220|pg_lsn|8|t|b|U|f|,|0|3221|pg_lsn_in|pg_lsn_out|pg_lsn_recv|pg_lsn_send|-|-|-|d|p|0|-|pg_lsn
3310|tsm_handler|4|t|p|P|f|,|0|0|tsm_handler_in|tsm_handler_out|-|-|-|-|-|i|p|0|-|tsm_handler
3361|pg_ndistinct|-1|f|b|Z|f|,|0|0|pg_ndistinct_in|pg_ndistinct_out|pg_ndistinct_recv|pg_ndistinct_send|-|-|-|i|x|100|-|pg_ndistinct
3402|pg_dependencies|-1|f|b|Z|f|,|0|0|pg_dependencies_in|pg_dependencies_out|pg_dependencies_recv|pg_dependencies_send|-|-|-|i|x|100|-|pg_dependencies
3500|anyenum|4|t|p|P|f|,|0|0|anyenum_in|anyenum_out|-|-|-|-|-|i|p|0|-|anyenum
3614|tsvector|-1|f|b|U|f|,|0|3643|tsvectorin|tsvectorout|tsvectorrecv|tsvectorsend|-|-|ts_typanalyze|i|x|0|-|tsvector
3615|tsquery|-1|f|b|U|f|,|0|3645|tsqueryin|tsqueryout|tsqueryrecv|tsquerysend|-|-|-|i|p|0|-|tsquery
3642|gtsvector|-1|f|b|U|f|,|0|3644|gtsvectorin|gtsvectorout|-|-|-|-|-|i|p|0|-|gtsvector
3734|regconfig|4|t|b|N|f|,|0|3735|regconfigin|regconfigout|regconfigrecv|regconfigsend|-|-|-|i|p|0|-|regconfig
3769|regdictionary|4|t|b|N|f|,|0|3770|regdictionaryin|regdictionaryout|regdictionaryrecv|regdictionarysend|-|-|-|i|p|0|-|regdictionary
3802|jsonb|-1|f|b|U|f|,|0|3807|jsonb_in|jsonb_out|jsonb_recv|jsonb_send|-|-|-|i|x|0|jsonb_subscript_handler|jsonb
3831|anyrange|-1|f|p|P|f|,|0|0|anyrange_in|anyrange_out|-|-|-|-|-|d|x|0|-|anyrange
3838|event_trigger|4|t|p|P|f|,|0|0|event_trigger_in|event_trigger_out|-|-|-|-|-|i|p|0|-|event_trigger
4072|jsonpath|-1|f|b|U|f|,|0|4073|jsonpath_in|jsonpath_out|jsonpath_recv|jsonpath_send|-|-|-|i|x|0|-|jsonpath
4089|regnamespace|4|t|b|N|f|,|0|4090|regnamespacein|regnamespaceout|regnamespacerecv|regnamespacesend|-|-|-|i|p|0|-|regnamespace
4096|regrole|4|t|b|N|f|,|0|4097|regrolein|regroleout|regrolerecv|regrolesend|-|-|-|i|p|0|-|regrole
4191|regcollation|4|t|b|N|f|,|0|4192|regcollationin|regcollationout|regcollationrecv|regcollationsend|-|-|-|i|p|0|-|regcollation
4537|anymultirange|-1|f|p|P|f|,|0|0|anymultirange_in|anymultirange_out|-|-|-|-|-|d|x|0|-|anymultirange
4538|anycompatiblemultirange|-1|f|p|P|f|,|0|0|anycompatiblemultirange_in|anycompatiblemultirange_out|-|-|-|-|-|d|x|0|-|anycompatiblemultirange
4600|pg_brin_bloom_summary|-1|f|b|Z|f|,|0|0|brin_bloom_summary_in|brin_bloom_summary_out|brin_bloom_summary_recv|brin_bloom_summary_send|-|-|-|i|x|100|-|pg_brin_bloom_summary
4601|pg_brin_minmax_multi_summary|-1|f|b|Z|f|,|0|0|brin_minmax_multi_summary_in|brin_minmax_multi_summary_out|brin_minmax_multi_summary_recv|brin_minmax_multi_summary_send|-|-|-|i|x|100|-|pg_brin_minmax_multi_summary
5017|pg_mcv_list|-1|f|b|Z|f|,|0|0|pg_mcv_list_in|pg_mcv_list_out|pg_mcv_list_recv|pg_mcv_list_send|-|-|-|i|x|100|-|pg_mcv_list
5038|pg_snapshot|-1|f|b|U|f|,|0|5039|pg_snapshot_in|pg_snapshot_out|pg_snapshot_recv|pg_snapshot_send|-|-|-|d|x|0|-|pg_snapshot
5069|xid8|8|t|b|U|f|,|0|271|xid8in|xid8out|xid8recv|xid8send|-|-|-|d|p|0|-|xid8
5077|anycompatible|4|t|p|P|f|,|0|0|anycompatible_in|anycompatible_out|-|-|-|-|-|i|p|0|-|anycompatible
5078|anycompatiblearray|-1|f|p|P|f|,|0|0|anycompatiblearray_in|anycompatiblearray_out|anycompatiblearray_recv|anycompatiblearray_send|-|-|-|d|x|0|-|anycompatiblearray
5079|anycompatiblenonarray|4|t|p|P|f|,|0|0|anycompatiblenonarray_in|anycompatiblenonarray_out|-|-|-|-|-|i|p|0|-|anycompatiblenonarray
5080|anycompatiblerange|-1|f|p|P|f|,|0|0|anycompatiblerange_in|anycompatiblerange_out|-|-|-|-|-|d|x|0|-|anycompatiblerange
"""


def _row(line: str) -> PgType:
    fields: list[object] = list(line.split("|"))
    for i in (0, 2, 8, 9, 19):
        fields[i] = int(str(fields[i]))
    for i in (3, 6):
        fields[i] = fields[i] == "t"
    return PgType._make(fields)


def array_of(element: PgType) -> PgType:
    """The array type of ``element``, as PostgreSQL defines every built-in array type."""
    return PgType(
        oid=element.typarray,
        typname="_" + element.typname,
        typlen=-1,
        typbyval=False,
        typtype="b",
        typcategory="A",
        typispreferred=False,
        typdelim=element.typdelim,
        typelem=element.oid,
        typarray=0,
        typinput="array_in",
        typoutput="array_out",
        typreceive="array_recv",
        typsend="array_send",
        typmodin=element.typmodin,
        typmodout=element.typmodout,
        typanalyze="array_typanalyze",
        typalign="d" if element.typalign == "d" else "i",
        typstorage="x",
        typcollation=element.typcollation,
        typsubscript="array_subscript_handler",
        format=element.format + "[]",
    )


def _all() -> tuple[PgType, ...]:
    elements = [_row(line) for line in _ELEMENTS.splitlines()]
    listed = {t.oid for t in elements}
    arrays = [array_of(t) for t in elements if t.typarray and t.typarray not in listed]
    return tuple(sorted([*elements, *arrays], key=lambda t: t.oid))


BUILTIN: tuple[PgType, ...] = _all()
BY_OID: dict[int, PgType] = {t.oid: t for t in BUILTIN}
