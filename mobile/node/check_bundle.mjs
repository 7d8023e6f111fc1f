#!/usr/bin/env node
// Proves that onnxruntime-node reproduces a Deepfake Studio bundle (docs/bundle-format.md):
// every golden input tensor goes through model.onnx, and the logits, the temperature-scaled
// probabilities, the score and the verdict must match golden/golden.json within its tolerances.
//
// Usage: node check_bundle.mjs BUNDLE_DIR
// Prints one JSON summary on stdout. Exit status: 0 parity, 1 mismatch, 2 unusable bundle.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import ort from 'onnxruntime-node';

const FORMAT = 'deepfake-studio/bundle';
const FORMAT_VERSION = 1;

class BundleError extends Error {}

function readJson(path, what) {
  if (!existsSync(path)) throw new BundleError(`${what} not found: ${path}`);
  try {
    // Python's json.dumps writes NaN/Infinity for undefined metrics; JSON.parse does not accept them.
    const text = readFileSync(path, 'utf8').replace(/([:,[]\s*)(-?Infinity|NaN)\b/g, '$1null');
    return JSON.parse(text);
  } catch (err) {
    throw new BundleError(`${what} is not valid JSON: ${err.message}`);
  }
}

function inside(dir, relative, what) {
  const clean = normalize(relative);
  if (isAbsolute(relative) || clean.split(/[\\/]/).includes('..')) {
    throw new BundleError(`${what} "${relative}" must be a relative path inside the bundle`);
  }
  return join(dir, clean);
}

function loadBundle(dir) {
  const meta = readJson(join(dir, 'bundle.json'), 'bundle.json');
  if (meta.format !== FORMAT) throw new BundleError(`not a Deepfake Studio bundle (format is ${meta.format})`);
  if (meta.format_version !== FORMAT_VERSION) {
    throw new BundleError(`bundle format version ${meta.format_version} is not supported`);
  }
  const modelPath = inside(dir, meta.model.file, 'model.file');
  if (!existsSync(modelPath)) throw new BundleError(`model not found: ${modelPath}`);
  const modelBytes = readFileSync(modelPath);
  const sha = createHash('sha256').update(modelBytes).digest('hex');
  if (sha !== String(meta.model.sha256).toLowerCase()) {
    throw new BundleError(`${meta.model.file} is damaged or was replaced: sha256 ${sha}, bundle.json expects ${meta.model.sha256}`);
  }
  const goldenPath = inside(dir, meta.golden ?? 'golden/golden.json', 'golden');
  return { meta, modelBytes, goldenPath, golden: readJson(goldenPath, 'golden.json') };
}

function readTensor(path, shape) {
  const count = shape.reduce((a, b) => a * b, 1);
  const bytes = readFileSync(path);
  if (bytes.length !== 4 * count) {
    throw new BundleError(`${path} has ${bytes.length} bytes, shape [${shape}] needs ${4 * count}`);
  }
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = bytes.readFloatLE(4 * i);
  return out;
}

/** The decision rule of docs/bundle-format.md. */
export function decide(logits, meta) {
  const { temperature, score: scoreKind, threshold, energy_floor: floor } = meta.calibration;
  const z = Array.from(logits, (v) => v / temperature);
  const max = Math.max(...z);
  const exps = z.map((v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  const probs = exps.map((v) => v / sum);
  let top = 0;
  probs.forEach((p, i) => { if (p > probs[top]) top = i; });
  const energy = max + Math.log(sum);
  const score = scoreKind === 'energy' ? energy : probs[top];
  const label = meta.class_names[top];
  const familiar = floor === undefined || floor === null || energy >= floor;
  let verdict = 'unknown';
  if (score >= threshold && familiar) verdict = label === meta.real_class ? 'real' : 'fake';
  return { probs, score, label, verdict, confidence: probs[top] };
}

const maxAbsDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

async function check(dir) {
  const { meta, modelBytes, goldenPath, golden } = loadBundle(dir);
  const session = await ort.InferenceSession.create(modelBytes);
  const inputName = meta.model.input;
  const tol = golden.tolerance;
  const failures = [];
  let maxLogits = 0;
  let maxProbs = 0;
  let verdictsEqual = 0;
  for (const vector of golden.vectors) {
    const data = readTensor(inside(dirname(goldenPath), vector.input, 'golden input'), vector.shape);
    const outputs = await session.run({ [inputName]: new ort.Tensor('float32', data, vector.shape) });
    const logits = Array.from(outputs.logits.data);
    if (logits.length !== vector.logits.length) {
      failures.push(`${vector.name}: ${logits.length} logits, golden has ${vector.logits.length}`);
      continue;
    }
    const logitDiff = maxAbsDiff(logits, vector.logits);
    maxLogits = Math.max(maxLogits, logitDiff);
    if (!(logitDiff <= tol.logits)) failures.push(`${vector.name}: logits differ by ${logitDiff} > ${tol.logits}`);
    const decision = decide(logits, meta);
    const probDiff = Math.max(maxAbsDiff(decision.probs, vector.probs), Math.abs(decision.score - vector.score));
    maxProbs = Math.max(maxProbs, probDiff);
    if (!(probDiff <= tol.probs)) failures.push(`${vector.name}: probs/score differ by ${probDiff} > ${tol.probs}`);
    const same = decision.verdict === vector.verdict && (vector.label == null || vector.label === decision.label);
    if (same) verdictsEqual += 1;
    else failures.push(`${vector.name}: verdict ${decision.verdict}/${decision.label}, golden ${vector.verdict}/${vector.label}`);
  }
  return {
    ok: failures.length === 0,
    bundle: dir,
    runtime: `onnxruntime-node ${ort.env.versions?.node ?? 'unknown'}`,
    precision: meta.model.precision,
    vectors: golden.vectors.length,
    max_logits_diff: maxLogits,
    max_probs_diff: maxProbs,
    verdicts_equal: verdictsEqual,
    tolerance: tol,
    failures,
  };
}

async function main(argv) {
  if (argv.length !== 1) {
    console.error('usage: node check_bundle.mjs BUNDLE_DIR');
    return 2;
  }
  try {
    const summary = await check(argv[0]);
    console.log(JSON.stringify(summary));
    return summary.ok ? 0 : 1;
  } catch (err) {
    const message = err instanceof BundleError ? err.message : `cannot run the bundle: ${err.message}`;
    console.log(JSON.stringify({ ok: false, bundle: argv[0], error: message }));
    console.error(`error: ${message}`);
    return 2;
  }
}

process.exitCode = await main(process.argv.slice(2));
