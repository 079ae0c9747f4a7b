// Example API Gateway proxy handler: `hello.handler`.
//
// Works unchanged on AWS Lambda and behind sluice, with either payload format:
// 2.0 (HTTP API: requestContext.http.method, rawPath) or 1.0 (REST API: httpMethod, path).
'use strict';

exports.handler = async (event, context) => {
  const http = (event.requestContext && event.requestContext.http) || {};
  const method = http.method || event.httpMethod;
  const path = event.rawPath || http.path || event.path;

  // Both formats carry pathParameters and queryStringParameters (null when empty).
  const name = (event.pathParameters && event.pathParameters.name) ||
    (event.queryStringParameters && event.queryStringParameters.name) ||
    'world';

  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      message: `Hello, ${name}!`,
      path,
      method,
      requestId: context.awsRequestId,
    }),
  };
};
