// Validates JSON documents against curfew's policy schema with ajv in strict
// mode (draft 2020-12, every format known to ajv-formats).
//
//   node validate.mjs SCHEMA [DOC.json ...]
//
// Compiling the schema fails (exit 2) on anything strict mode refuses
// (unknown keywords or formats, ambiguous types). Then prints one JSON line
// per document: {"file", "valid", "errors"}; exit 0 whatever the verdicts.
import { readFileSync } from "node:fs";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const [schemaPath, ...docs] = process.argv.slice(2);
if (!schemaPath) {
  console.error("usage: node validate.mjs SCHEMA [DOC.json ...]");
  process.exit(2);
}
const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
let validate;
try {
  validate = ajv.compile(JSON.parse(readFileSync(schemaPath, "utf8")));
} catch (e) {
  console.error(`ajv strict: ${schemaPath}: ${e.message}`);
  process.exit(2);
}
for (const file of docs) {
  const valid = validate(JSON.parse(readFileSync(file, "utf8")));
  const errors = (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message}`);
  console.log(JSON.stringify({ file, valid, errors }));
}
