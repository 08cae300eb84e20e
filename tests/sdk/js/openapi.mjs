// Writes Seam's OpenAPI document, as pinned by package-lock.json (@seamapi/types,
// lib/seam/connect/openapi.js, export `openapi`), to the JSON file named by the argument.
import { writeFileSync } from 'node:fs'
import { openapi } from '@seamapi/types/connect'

const out = process.argv[2]
if (!out) {
  console.error('usage: node openapi.mjs OUT.json')
  process.exit(2)
}
writeFileSync(out, JSON.stringify(openapi))
console.log(`${Object.keys(openapi.paths).length} paths written to ${out}`)
