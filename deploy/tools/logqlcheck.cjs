// Parse LogQL queries with Grafana's own grammar (@grafana/lezer-logql) and fail on any
// syntax error. Input on stdin: a JSON list of [where, query] pairs.
//   NODE_PATH=~/.cache/apimirror/node/node_modules node deploy/tools/logqlcheck.cjs < queries.json
"use strict";
const { parser } = require("@grafana/lezer-logql");

function errorsIn(query) {
  const found = [];
  parser.parse(query).iterate({
    enter(node) {
      if (node.type.isError) found.push(node.from);
    },
  });
  return found;
}

const queries = JSON.parse(require("fs").readFileSync(0, "utf8"));
let failed = 0;
for (const [where, query] of queries) {
  const at = errorsIn(query);
  if (at.length > 0) {
    failed += 1;
    console.log(`FAIL ${where}: syntax error at offset ${at[0]}: ${query}`);
  }
}
console.log(`parsed ${queries.length} queries, ${failed} with errors`);
process.exit(failed === 0 ? 0 : 1);
