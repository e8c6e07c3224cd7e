// Validate Teams app manifests with Microsoft's @microsoft/app-manifest (the schemas it bundles,
// offline). stdin: {name: manifest}; stdout: {name: [error strings]}.
"use strict";
const fs = require("fs");
const { AppManifestUtils } = require("@microsoft/app-manifest");

async function main() {
  const input = JSON.parse(fs.readFileSync(0, "utf8"));
  const out = {};
  for (const [name, manifest] of Object.entries(input)) {
    out[name] = await AppManifestUtils.validateAgainstSchema(manifest);
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
