// Writes src/wire.ts: one TypeScript type per schema of the server's OpenAPI document.
//
//   npm run gen                        # starts `alma serve` ($ALMA_BIN, default ../../.venv/bin/alma)
//   node scripts/gen-wire.mjs doc.json [out.ts]   # or from a saved document (to another file)
//
// The SDK's parameter and result types are built from these, so `tsc` fails when the SDK sends a field
// the server doesn't take; test/openapi.test.mjs fails when this file is older than the server.
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const HEADER =
  '// Generated from the server\'s /openapi.json by scripts/gen-wire.mjs: do not edit; `npm run gen` rewrites it.\n' +
  '/* eslint-disable */\n';

const refName = (ref) => ref.split('/').pop();
const quote = (key) => (/^[A-Za-z_$][\w$]*$/.test(key) ? key : JSON.stringify(key));

function union(parts) {
  const unique = [...new Set(parts)];
  return unique.length === 1 ? unique[0] : unique.join(' | ');
}

/** The TypeScript type of a JSON schema (`indent` for nested object literals). */
export function typeOf(schema, indent = '') {
  if (!schema || Object.keys(schema).length === 0) return 'unknown';
  if (schema.$ref) return refName(schema.$ref);
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return union(schema.enum.map((v) => JSON.stringify(v)));
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) return union(alternatives.map((s) => typeOf(s, indent)));
  if (schema.allOf && schema.allOf.length === 1) return typeOf(schema.allOf[0], indent);
  switch (schema.type) {
    case 'string':
      return 'string';
    case 'integer':
    case 'number':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'null':
      return 'null';
    case 'array': {
      const item = typeOf(schema.items, indent);
      return /[ |]/.test(item) ? `Array<${item}>` : `${item}[]`;
    }
    case 'object':
    case undefined:
      return objectType(schema, indent);
    default:
      return 'unknown';
  }
}

function objectType(schema, indent) {
  const props = schema.properties ?? {};
  const required = new Set(schema.required ?? []);
  const extra = schema.additionalProperties;
  const keys = Object.keys(props);
  if (keys.length === 0) {
    if (extra === false) return 'Record<string, never>';
    const value = extra && extra !== true ? typeOf(extra, indent) : 'unknown';
    if (schema.propertyNames?.enum) return `Partial<Record<${typeOf(schema.propertyNames)}, ${value}>>`;
    return `Record<string, ${value}>`;
  }
  const inner = indent + '  ';
  const lines = keys.map((key) => {
    const doc = props[key].description ? `${inner}/** ${props[key].description.replace(/\*\//g, '* /')} */\n` : '';
    return `${doc}${inner}${quote(key)}${required.has(key) ? '' : '?'}: ${typeOf(props[key], inner)};`;
  });
  if (extra === true) lines.push(`${inner}[key: string]: unknown;`);
  return `{\n${lines.join('\n')}\n${indent}}`;
}

/** The text of src/wire.ts for an OpenAPI document. */
export function generate(doc) {
  const schemas = doc.components?.schemas ?? {};
  const out = [HEADER];
  for (const name of Object.keys(schemas).sort()) {
    const schema = schemas[name];
    const doc_ = schema.description ? `/** ${schema.description.split('\n')[0].replace(/\*\//g, '* /')} */\n` : '';
    const body = typeOf({ ...schema, description: undefined, $ref: undefined });
    const isObject = body.startsWith('{');
    out.push(isObject ? `${doc_}export interface ${name} ${body}\n` : `${doc_}export type ${name} = ${body};\n`);
  }
  return out.join('\n');
}

async function main() {
  const source = process.argv[2];
  let doc;
  if (source) {
    doc = JSON.parse(await readFile(source, 'utf8'));
  } else {
    const { startServer } = await import('../test/server.mjs');
    const server = await startServer();
    try {
      doc = await (await fetch(`${server.url}/openapi.json`)).json();
    } finally {
      await server.stop();
    }
  }
  const target = process.argv[3] ?? fileURLToPath(new URL('../src/wire.ts', import.meta.url));
  await writeFile(target, generate(doc));
  console.log(`wrote ${target}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main();
}
