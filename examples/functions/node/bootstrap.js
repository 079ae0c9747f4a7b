#!/usr/bin/env node
// A minimal Lambda custom runtime for Node.js handlers (no npm packages).
//
// It speaks the AWS Lambda Runtime API (version 2018-06-01) the way AWS documents it
// for custom runtimes, so the same handler code runs on AWS Lambda and behind sluice:
//
//   GET  /runtime/invocation/next           long poll for the next event
//   POST /runtime/invocation/{id}/response  the handler's JSON result
//   POST /runtime/invocation/{id}/error     {"errorMessage", "errorType", "stackTrace"}
//   POST /runtime/init/error                the handler could not be loaded
//
// Environment (set by sluice, as by Lambda): AWS_LAMBDA_RUNTIME_API (host:port),
// _HANDLER ("file.export", file in LAMBDA_TASK_ROOT), LAMBDA_TASK_ROOT,
// AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_VERSION, AWS_LAMBDA_FUNCTION_MEMORY_SIZE.
//
// Handlers may be async (return a Promise) or callback-style (event, context, callback).
// The runtime writes nothing to stdout (that is the handler's); diagnostics go to stderr.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const crypto = require('crypto');
const { pathToFileURL } = require('url');

const API_PREFIX = '/2018-06-01/runtime';
const [, API_HOST, API_PORT] = /^\[?(.*?)\]?:(\d+)$/.exec(process.env.AWS_LAMBDA_RUNTIME_API || '') || [];

// One kept-alive connection to the Runtime API. No timeout is set anywhere: the /next
// long poll must be allowed to wait indefinitely (AWS: "Do not set a timeout on the GET").
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function log(message) {
  process.stderr.write(message + '\n');
}

function request(method, urlPath, body, headers, retried) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: API_HOST, port: Number(API_PORT), method, path: API_PREFIX + urlPath, agent,
      headers: body === undefined ? headers : { ...headers, 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', (err) => {
      // The server may close a kept-alive connection while it sits idle; retry once on
      // a fresh one (the pattern Node's http docs recommend for reusedSocket).
      if (req.reusedSocket && !retried && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
        resolve(request(method, urlPath, body, headers, true));
      } else {
        reject(err);
      }
    });
    req.end(body);
  });
}

// The error document Lambda expects. errorType is the error's name ("Error", "TypeError");
// a non-Error value (callback('oops'), throw 'oops') reports its typeof, as on AWS.
function errorPayload(err, errorType) {
  if (err instanceof Error) {
    return {
      errorMessage: err.message,
      errorType: errorType || err.name || 'Error',
      stackTrace: err.stack ? String(err.stack).split('\n') : [],  // as AWS: the stack's lines
    };
  }
  let message;
  try { message = typeof err === 'string' ? err : JSON.stringify(err); } catch (e) { message = String(err); }
  return { errorMessage: String(message), errorType: errorType || typeof err, stackTrace: [] };
}

function postError(urlPath, payload) {
  // The Lambda-Runtime-Function-Error-Type header carries the error type, as AWS's
  // runtime interface clients send it.
  log(`[ERROR] ${payload.errorType}: ${payload.errorMessage}` +
      payload.stackTrace.slice(1).map((l) => '\n' + l).join(''));
  return request('POST', urlPath, JSON.stringify(payload), {
    'Content-Type': 'application/json',
    'Lambda-Runtime-Function-Error-Type': payload.errorType,
  });
}

// An error the runtime itself reports, with one of Lambda's "Runtime.*" error types.
class RuntimeFault extends Error {
  constructor(errorType, message) {
    super(message);
    this.name = errorType;
  }
}

// Loads "dir/file.export[.nested]" relative to LAMBDA_TASK_ROOT, like AWS's Node runtime:
// the module is what precedes the first '.' after the last '/'. CommonJS is loaded with
// require(), ES modules (.mjs, or "type": "module") with import().
async function loadHandler(spec, root) {
  const dot = spec.indexOf('.', spec.lastIndexOf('/') + 1);
  if (dot < 0) throw new RuntimeFault('Runtime.MalformedHandlerName', `Bad handler ${spec}`);
  const moduleName = spec.slice(0, dot);
  const exportPath = spec.slice(dot + 1);
  const base = path.resolve(root, moduleName);

  let mod;
  try {
    const file = ['.js', '.mjs', '.cjs'].map((ext) => base + ext).find((f) => fs.existsSync(f));
    if (file && file.endsWith('.mjs')) {
      mod = await import(pathToFileURL(file).href);
    } else {
      try {
        mod = require(file || base);
      } catch (err) {
        if (err.code !== 'ERR_REQUIRE_ESM') throw err;
        mod = await import(pathToFileURL(file || require.resolve(base)).href);
      }
    }
  } catch (err) {
    if (err.code === 'MODULE_NOT_FOUND' || err.code === 'ERR_MODULE_NOT_FOUND') {
      throw new RuntimeFault('Runtime.ImportModuleError', `${err.name}: ${err.message}`);
    }
    if (err instanceof SyntaxError) {
      throw new RuntimeFault('Runtime.UserCodeSyntaxError', `${err.name}: ${err.message}`);
    }
    throw err;  // thrown by the module's own top-level code: reported as itself
  }

  const handler = exportPath.split('.').reduce((obj, key) => (obj == null ? undefined : obj[key]), mod);
  if (typeof handler !== 'function') {
    throw new RuntimeFault('Runtime.HandlerNotFound', `${spec} is undefined or not exported`);
  }
  return handler;
}

// Like Lambda's "YYYY/MM/DD/[version]<id>": one log stream per runtime process.
const LOG_STREAM_NAME = new Date().toISOString().slice(0, 10).replace(/-/g, '/') +
  `/[${process.env.AWS_LAMBDA_FUNCTION_VERSION || '$LATEST'}]` + crypto.randomBytes(16).toString('hex');

// The `context` argument, with the fields of AWS's Node.js context object.
function makeContext(headers, callback) {
  const env = process.env;
  const deadline = Number(headers['lambda-runtime-deadline-ms'] || 0);
  const context = {
    functionName: env.AWS_LAMBDA_FUNCTION_NAME || '',
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION || '$LATEST',
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'] || '',
    memoryLimitInMB: String(env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE || '128'),  // a string on AWS too
    awsRequestId: headers['lambda-runtime-aws-request-id'],
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME || `/aws/lambda/${env.AWS_LAMBDA_FUNCTION_NAME || ''}`,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME || LOG_STREAM_NAME,
    // Accepted for compatibility. This runtime always replies as soon as the handler's
    // callback is called (AWS would first wait for the event loop to drain when true).
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
    // Legacy context methods, still honoured by AWS's Node runtime.
    done: callback,
    succeed: (result) => callback(null, result),
    fail: (err) => callback(err == null ? 'handled' : err),
  };
  if (headers['lambda-runtime-cognito-identity']) {
    const id = JSON.parse(headers['lambda-runtime-cognito-identity']);
    context.identity = { cognitoIdentityId: id.cognitoIdentityId, cognitoIdentityPoolId: id.cognitoIdentityPoolId };
  }
  if (headers['lambda-runtime-client-context']) {
    context.clientContext = JSON.parse(headers['lambda-runtime-client-context']);
  }
  return context;
}

// Runs one invocation; resolves with the result or rejects with the handler's error.
// Whichever comes first wins: the returned Promise settling, or the callback being called.
function invoke(handler, event, headers) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const callback = (err, result) => {
      if (settled) return;
      settled = true;
      if (err !== undefined && err !== null) reject(err); else resolve(result);
    };
    const context = makeContext(headers, callback);
    let returned;
    try {
      returned = handler(event, context, callback);
    } catch (err) {
      callback(err === undefined || err === null ? new Error(String(err)) : err);
      return;
    }
    if (returned && typeof returned.then === 'function') {
      returned.then((result) => callback(null, result),
        (err) => callback(err === undefined || err === null ? new Error(String(err)) : err));
    } else if (handler.length < 3) {
      // A plain synchronous handler that takes no callback: its return value is the result.
      callback(null, returned);
    }  // else: a callback-style handler; wait for the callback.
  });
}

let currentRequestId = null;  // the invocation in progress, for uncaught errors

async function handleOne(handler) {
  const next = await request('GET', '/invocation/next');
  const requestId = next.headers['lambda-runtime-aws-request-id'];
  if (next.status !== 200 || !requestId) {
    // 500 here means "container error, non-recoverable": exit promptly.
    log(`runtime: /invocation/next answered ${next.status}: ${next.body.slice(0, 200)}`);
    process.exit(1);
  }

  // Propagate the X-Ray trace header for SDKs, as AWS's runtimes do.
  if (next.headers['lambda-runtime-trace-id']) process.env._X_AMZN_TRACE_ID = next.headers['lambda-runtime-trace-id'];
  else delete process.env._X_AMZN_TRACE_ID;

  // Run the handler and serialize its result; any failure becomes the error document.
  currentRequestId = requestId;
  let payload;
  let failure;
  try {
    let event;
    try {
      event = next.body ? JSON.parse(next.body) : null;
    } catch (err) {
      throw new RuntimeFault('Runtime.UnmarshalError', `Unable to unmarshal input: ${err.message}`);
    }
    const result = await invoke(handler, event, next.headers);
    try {
      payload = JSON.stringify(result === undefined ? null : result) ?? 'null';  // undefined → null, as AWS
    } catch (err) {
      throw new RuntimeFault('Runtime.MarshalError', `Unable to stringify response body: ${err.message}`);
    }
  } catch (err) {
    failure = errorPayload(err);
  }
  currentRequestId = null;

  const reply = failure
    ? await postError(`/invocation/${requestId}/error`, failure)
    : await request('POST', `/invocation/${requestId}/response`, payload, { 'Content-Type': 'application/json' });
  if (reply.status >= 500) {
    log(`runtime: the Runtime API answered ${reply.status}: ${reply.body.slice(0, 200)}; exiting`);
    process.exit(1);
  }
  if (reply.status !== 202) log(`runtime: the Runtime API answered ${reply.status}: ${reply.body.slice(0, 200)}`);
}

// An error thrown outside the handler's promise chain (a timer, an unhandled rejection)
// fails the current invocation, and the process exits, as on AWS.
async function onFatal(err, errorType) {
  const payload = errorPayload(err, errorType);
  try {
    if (currentRequestId) await postError(`/invocation/${currentRequestId}/error`, payload);
    else log(`[ERROR] ${payload.errorType}: ${payload.errorMessage}`);
  } finally {
    process.exit(1);
  }
}

async function main() {
  if (!API_HOST) {
    log('runtime: AWS_LAMBDA_RUNTIME_API is not set (host:port)');
    process.exit(1);
  }

  // Init: load the handler module once; its top-level code runs here, once per process.
  let handler;
  try {
    handler = await loadHandler(process.env._HANDLER || '', process.env.LAMBDA_TASK_ROOT || process.cwd());
  } catch (err) {
    try {
      await postError('/init/error', errorPayload(err));
    } catch (postErr) {
      log(`runtime: could not report the init error: ${postErr.message}`);
    }
    process.exit(1);  // AWS: report the init error, then exit
  }

  process.on('uncaughtException', (err) => onFatal(err));
  process.on('unhandledRejection', (reason) => onFatal(reason, 'Runtime.UnhandledPromiseRejection'));

  // Invoke loop: one event at a time, for the life of the process.
  for (;;) {
    try {
      await handleOne(handler);
    } catch (err) {
      log(`runtime: lost the Runtime API (${err.message}); exiting`);
      process.exit(1);
    }
  }
}

main();
