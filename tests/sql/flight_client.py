"""A real Flight SQL client (PyPI adbc-driver-flightsql and pyarrow.flight) against flamedb.

Run by tests/flight_sql.rs:

    python flight_client.py <host:port> <tenant> <input.json>

The input file holds {"examples": [{"name": .., "sql": ..}], "export": <ExportRequest ticket>,
"refused": [statements that must fail]}. The script prints one JSON object on stdout; the Rust test
compares it with what the HTTP SQL endpoint answers for the same tenant. Every failure of a step is
reported as that step's "error" text instead of aborting, so one broken path does not hide the
others.

Value rule (applied the same way on the Rust side to the HTTP JSON): timestamps become integer
nanoseconds since the epoch, binary values lowercase hex strings, maps JSON objects, lists JSON
arrays, decimals floats; everything else is its plain Python value. Each result also carries its
column names and Arrow type strings so the Rust side knows which HTTP strings are timestamps.
"""

import json
import sys
import traceback

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight

# Nanoseconds per unit of an Arrow timestamp.
_NANOS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def plain(s):
    """One Arrow scalar as a plain JSON value (see the module's value rule)."""
    if not s.is_valid:
        return None
    t = s.type
    if pa.types.is_timestamp(t):
        return s.value * _NANOS[t.unit]
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return s.as_py().hex()
    if hasattr(pa.types, "is_binary_view") and pa.types.is_binary_view(t):
        return s.as_py().hex()
    if pa.types.is_map(t):
        return {plain(e["key"]): plain(e["value"]) for e in s.values} if s.values is not None else {}
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return [plain(v) for v in s.values] if s.values is not None else []
    if hasattr(pa.types, "is_list_view") and (pa.types.is_list_view(t) or pa.types.is_large_list_view(t)):
        return [plain(v) for v in s.values] if s.values is not None else []
    if pa.types.is_struct(t):
        return {f.name: plain(s[f.name]) for f in t}
    if pa.types.is_decimal(t):
        return float(s.as_py())
    if pa.types.is_date(t) or pa.types.is_time(t):
        return s.as_py().isoformat()
    if pa.types.is_duration(t):
        return s.value * _NANOS[t.unit]
    return s.as_py()


def table_json(table):
    """A result table as {columns, types, rows}: rows are lists in column order."""
    columns = [table.column(i) for i in range(table.num_columns)]
    rows = [[plain(c[r]) for c in columns] for r in range(table.num_rows)]
    return {
        "columns": table.column_names,
        "types": [str(f.type) for f in table.schema],
        "rows": rows,
    }


def error_text(e):
    return f"{type(e).__name__}: {e}"


def run_examples(conn, examples):
    out = []
    for ex in examples:
        item = {"name": ex["name"]}
        try:
            with conn.cursor() as cur:
                cur.execute(ex["sql"])
                item.update(table_json(cur.fetch_arrow_table()))
        except Exception as e:  # noqa: BLE001 - reported to the Rust side
            item["error"] = error_text(e)
        out.append(item)
    return out


def prepared(conn, sql):
    """The same statement through an explicit prepared statement (CreatePreparedStatement + execute)."""
    try:
        with conn.cursor() as cur:
            cur.adbc_prepare(sql)
            cur.execute(sql)
            return table_json(cur.fetch_arrow_table())
    except Exception as e:  # noqa: BLE001
        return {"error": error_text(e)}


def objects(conn):
    """GetCatalogs/GetDbSchemas/GetTables through adbc_get_objects: [catalog, schema, table, type] rows."""
    try:
        listing = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        tables = []
        for cat in listing:
            for sch in cat["catalog_db_schemas"] or []:
                for tab in sch["db_schema_tables"] or []:
                    tables.append([cat["catalog_name"], sch["db_schema_name"], tab["table_name"], tab["table_type"]])
        return {"tables": sorted(tables)}
    except Exception as e:  # noqa: BLE001
        return {"error": error_text(e)}


def table_schema(conn, name):
    try:
        schema = conn.adbc_get_table_schema(name, catalog_filter="flamedb", db_schema_filter="public")
        return {"fields": [[f.name, str(f.type), f.nullable] for f in schema]}
    except Exception as e:  # noqa: BLE001
        return {"error": error_text(e)}


def info(conn):
    """GetSqlInfo through adbc_get_info: only the string-valued entries (vendor name, version, ...)."""
    try:
        return {"info": {str(k): v for k, v in conn.adbc_get_info().items() if isinstance(v, str)}}
    except Exception as e:  # noqa: BLE001
        return {"error": error_text(e)}


def refused(conn, statements):
    out = []
    for sql in statements:
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                cur.fetch_arrow_table()
            out.append({"sql": sql, "error": None})
        except Exception as e:  # noqa: BLE001
            out.append({"sql": sql, "error": error_text(e)})
    return out


def export(address, tenant, ticket):
    """A plain pyarrow.flight DoGet of a JSON export ticket: its columns, row count and sum of `value`."""
    try:
        client = flight.FlightClient(f"grpc://{address}")
        options = flight.FlightCallOptions(headers=[(b"x-scope-orgid", tenant.encode())])
        table = client.do_get(flight.Ticket(json.dumps(ticket).encode()), options).read_all()
        total = pc.sum(table.column("value")).as_py() if table.num_rows else 0
        services = sorted(set(table.column("service_name").to_pylist())) if table.num_rows else []
        client.close()
        return {
            "columns": table.column_names,
            "types": [str(f.type) for f in table.schema],
            "rows": table.num_rows,
            "total": total,
            "services": services,
        }
    except Exception as e:  # noqa: BLE001
        return {"error": error_text(e)}


def main():
    address, tenant, path = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    header = adbc_driver_flightsql.DatabaseOptions.RPC_CALL_HEADER_PREFIX.value + "x-scope-orgid"
    result = {}
    with flightsql.connect(f"grpc://{address}", db_kwargs={header: tenant}) as conn:
        result["examples"] = run_examples(conn, spec["examples"])
        if spec.get("prepared"):
            result["prepared"] = prepared(conn, spec["prepared"])
        result["objects"] = objects(conn)
        result["samples_schema"] = table_schema(conn, "samples")
        result["info"] = info(conn)
        result["refused"] = refused(conn, spec.get("refused", []))
        # After the refused statements: the tables must all still be there.
        result["objects_after"] = objects(conn)
    if spec.get("export"):
        result["export"] = export(address, tenant, spec["export"])
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    try:
        main()
    except Exception:  # noqa: BLE001 - a connect failure: the traceback goes to the Rust test's message
        traceback.print_exc()
        sys.exit(2)
