// Runs one SQL query with DuckDB and prints the rows as a JSON array.
// Used by the tests as a Parquet reader independent of parquet-go.
// Usage: NODE_PATH=<dir>/node_modules node duckdb-query.js 'SQL'
const { DuckDBInstance } = require('@duckdb/node-api');
(async () => {
  const inst = await DuckDBInstance.create(':memory:');
  const conn = await inst.connect();
  const r = await conn.runAndReadAll(process.argv[2]);
  process.stdout.write(JSON.stringify(r.getRowObjectsJson()));
})().catch(e => { console.error(e.message); process.exit(1); });
