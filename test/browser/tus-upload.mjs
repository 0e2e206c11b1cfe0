// A tus client that is not bodycam's (tus-js-client, as docks built on
// Uppy or on tus-js-client use it) uploads a file to the real server, in
// 64 KiB PATCHes. Driven by upload/tusjs_test.go: it prints the finishing
// PATCH's status and body (the receipt) as one JSON line.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import * as tus from 'tus-js-client';

const { BODYCAM_URL: url, BODYCAM_TOKEN: token, BODYCAM_FILE: file, BODYCAM_DEVICE: device, BODYCAM_SHA256: sha256 } = process.env;
const data = readFileSync(file);
let progress = 0;
const upload = new tus.Upload(data, {
  endpoint: url + '/api/v1/uploads/',
  headers: { Authorization: 'Bearer ' + token },
  chunkSize: 16 * 1024,
  retryDelays: [0, 500],
  // "name" as Uppy and tus-js-client's examples send it (the server also takes "filename").
  metadata: { name: basename(file), device, sha256, filetype: 'video/mp4' },
  onProgress: (sent) => { progress = sent; },
  onError: (err) => { console.error('upload failed:', err.message); process.exit(1); },
  onSuccess: ({ lastResponse }) => {
    console.log(JSON.stringify({ status: lastResponse.getStatus(), url: upload.url, progress, body: lastResponse.getBody() }));
  },
});
upload.start();
