// Validate a glTF/GLB file with the Khronos validator; print its JSON report on stdout.
// Usage: node validate.js FILE   (exit status 0 whatever the report says; read numErrors)
const fs = require("fs");
const path = require("path");
const validator = require("gltf-validator");

const file = process.argv[2];
const data = new Uint8Array(fs.readFileSync(file));
validator
  .validateBytes(data, {
    uri: path.basename(file),
    externalResourceFunction: (uri) =>
      new Promise((resolve, reject) => {
        fs.readFile(path.join(path.dirname(file), decodeURIComponent(uri)), (err, d) =>
          err ? reject(err.toString()) : resolve(new Uint8Array(d)));
      }),
  })
  .then((report) => console.log(JSON.stringify(report)))
  .catch((error) => { console.error("validation failed: " + error); process.exit(2); });
