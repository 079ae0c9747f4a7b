// Test functions for sluice's integration tests, run by
// examples/functions/node/bootstrap.js with _HANDLER = "testfn.<name>".
//
// Handlers: echo (async), echoCallback (callback style), sleep (?ms=), crash, fail,
// raw, fast. Query parameters come from queryStringParameters (both payload formats).
'use strict';

const ENV_KEYS = [
  'AWS_LAMBDA_FUNCTION_NAME',
  'AWS_LAMBDA_FUNCTION_MEMORY_SIZE',
  'AWS_LAMBDA_FUNCTION_VERSION',
  'AWS_REGION',
  '_HANDLER',
  'LAMBDA_TASK_ROOT',
  'AWS_LAMBDA_RUNTIME_API',
  'GREETING',
];

function query(event, name, fallback) {
  const q = event.queryStringParameters || {};
  return q[name] !== undefined ? q[name] : fallback;
}

function echoResponse(event, context) {
  const env = {};
  for (const k of ENV_KEYS) env[k] = process.env[k] === undefined ? null : process.env[k];
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      event,
      pid: process.pid,
      env,
      remaining_ms: context.getRemainingTimeInMillis(),
      request_id: context.awsRequestId,
      arn: context.invokedFunctionArn,
    }),
  };
}

// The event, the process, its Lambda environment and context, as JSON.
exports.echo = async (event, context) => echoResponse(event, context);

// The same, callback style, answered from a later tick.
exports.echoCallback = (event, context, callback) => {
  setImmediate(() => callback(null, echoResponse(event, context)));
};

// Sleeps ?ms= milliseconds, then echoes.
exports.sleep = async (event, context) => {
  await new Promise((resolve) => setTimeout(resolve, Number(query(event, 'ms', '0'))));
  return echoResponse(event, context);
};

// The process dies mid-invocation, without answering.
exports.crash = async () => {
  process.stderr.write('testfn.crash: exiting with status 3\n');
  process.exit(3);
};

// An unhandled error: reported to /invocation/{id}/error as Error "boom".
exports.fail = async () => {
  throw new Error('boom');
};

// Returns the request body's JSON verbatim, to drive response mapping.
exports.raw = async (event) => JSON.parse(event.body);

// The cheapest possible reply, for benchmarks.
exports.fast = async () => ({ statusCode: 200, body: 'ok' });
