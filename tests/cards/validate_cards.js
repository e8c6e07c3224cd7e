// Validate Adaptive Cards with Microsoft's `adaptivecards` parser (and, when given, the
// official JSON schema via ajv), and render every Markdown-bearing string with markdown-it.
// stdin: {"cards": {name: card}, "schema": path | null}
// stdout: {name: {"parser": [events], "schema": [errors] | null, "texts": [{path, text, html}]}}
"use strict";
const fs = require("fs");
const AC = require("adaptivecards/dist/adaptivecards.js"); // the default entry needs a DOM
const MarkdownIt = require("markdown-it");

const input = JSON.parse(fs.readFileSync(0, "utf8"));
const md = new MarkdownIt(); // CommonMark defaults: html off, linkify off

let validateSchema = null;
if (input.schema) {
  const Ajv = require("ajv");
  const addFormats = require("ajv-formats");
  const schema = JSON.parse(fs.readFileSync(input.schema, "utf8"));
  // The file declares draft-06 but uses the draft-04 "id" keyword, which ajv 8 rejects; the
  // other draft-06 keywords it uses are identical in ajv's default draft-07.
  delete schema.id;
  delete schema.$schema;
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  validateSchema = ajv.compile(schema);
}

function parserEvents(json) {
  const card = new AC.AdaptiveCard();
  const ctx = new AC.SerializationContext(AC.Versions.v1_5);
  card.parse(json, ctx);
  const out = [];
  for (let i = 0; i < ctx.eventCount; i++) {
    const e = ctx.getEventAt(i);
    out.push({ event: AC.ValidationEvent[e.event], phase: AC.ValidationPhase[e.phase], message: e.message });
  }
  for (const e of card.validateProperties().validationEvents) {
    out.push({ event: AC.ValidationEvent[e.event], phase: AC.ValidationPhase[e.phase], message: e.message });
  }
  return out;
}

function markdownTexts(node, path, out) {
  if (Array.isArray(node)) {
    node.forEach((v, i) => markdownTexts(v, `${path}[${i}]`, out));
    return out;
  }
  if (node === null || typeof node !== "object") return out;
  const push = (key) => {
    if (typeof node[key] === "string") out.push({ path: `${path}.${key}`, text: node[key], html: md.render(node[key]) });
  };
  if (node.type === "TextBlock") push("text");
  if (node.type === "AdaptiveCard") push("fallbackText");
  if ("title" in node && "value" in node && node.type === undefined) { push("title"); push("value"); } // Fact
  for (const [k, v] of Object.entries(node)) markdownTexts(v, `${path}.${k}`, out);
  return out;
}

const result = {};
for (const [name, card] of Object.entries(input.cards)) {
  let schemaErrors = null;
  if (validateSchema) {
    schemaErrors = validateSchema(card) ? [] : validateSchema.errors.map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);
  }
  result[name] = { parser: parserEvents(card), schema: schemaErrors, texts: markdownTexts(card, "$", []) };
}
process.stdout.write(JSON.stringify(result));
