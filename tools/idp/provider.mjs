// A certified OpenID Provider (oidc-provider) for trying relayshop with someone else's identity
// provider, and for the tests that do. Development only: demo accounts with published passwords,
// in-memory storage, a signing key made at every start.
//
//   node tools/idp/provider.mjs --port 9090 [--issuer http://127.0.0.1:9090]
//                               [--console http://localhost:8000 ...]
//
// Install it first with `make idp-deps` (npm ci). oidc-provider supports Node.js 22 LTS and later;
// Node.js 20 runs it, with a warning at start.
//
// It prints one line, "relayshop-idp ready <issuer>", once it accepts connections. It issues:
// - JWT access tokens (RFC 9068: header typ at+jwt, aud, client_id, scope) for the resource
//   urn:relayshop:gateway (RFC 8707 resource indicators), with relayshop's roles in "roles";
// - client_credentials tokens to the confidential client relayshop-reporting (RFC 6749 4.4);
// - authorization code tokens to the public client relayshop-console, PKCE S256 required
//   (RFC 7636; RFC 9700 section 2.1.1), after sign-in on oidc-provider's development login page.
//   Its redirect URI is <console>/console/oidc/callback and, after RP-initiated logout (its
//   end_session_endpoint), <console>/, for each --console given (default http://localhost:8000,
//   the gateway of `make run`).
//
// The matching RELAYSHOP_TRUSTED_ISSUERS entry:
//   {"issuer": "<issuer>", "audience": "urn:relayshop:gateway", "roles_claim": "roles",
//    "allowed_azp": ["relayshop-console", "relayshop-reporting"]}

import { generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const RESOURCE = 'urn:relayshop:gateway';
// The scope a token for relayshop may carry; what a client gets is what it asks for, within it.
const RESOURCE_SCOPE = 'relayshop';
// As relayshop's own auth: every hop refuses an access token living longer than its
// RELAYSHOP_ACCESS_TOKEN_TTL_SECONDS (default 300).
const ACCESS_TOKEN_TTL = 300;

// The demo accounts: relayshop's roles, and passwords that follow auth's seed (<name>-password).
const ACCOUNTS = {
  alice: { roles: ['customer'] },
  sam: { roles: ['support'] },
  wendy: { roles: ['warehouse'] },
  ada: { roles: ['admin'] },
};
const password = (name) => `${name}-password`;
// A machine client acts with the roles given here, never with a user's.
const CLIENT_ROLES = { 'relayshop-reporting': ['support'] };

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    issuer: { type: 'string' },
    console: { type: 'string', multiple: true },
  },
});
// Where the console (the gateway) runs: its callback and its page are registered, exactly.
const consoles = (args.console ?? ['http://localhost:8000']).map((url) => url.replace(/\/+$/, ''));
const port = Number(args.port);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node tools/idp/provider.mjs --port N [--issuer URL]');
  process.exit(2);
}
const issuer = args.issuer ?? `http://127.0.0.1:${port}`;

// A fresh RS256 key at each start: tokens from an earlier run are refused, as they should be.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: randomBytes(12).toString('base64url'),
  use: 'sig',
  alg: 'RS256',
};

const provider = new Provider(issuer, {
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  clients: [
    {
      client_id: 'relayshop-reporting',
      client_secret: 'relayshop-reporting-demo-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
    {
      client_id: 'relayshop-console',
      token_endpoint_auth_method: 'none', // public: a browser keeps no secret
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: consoles.map((url) => `${url}/console/oidc/callback`),
      post_logout_redirect_uris: consoles.map((url) => `${url}/`),
    },
  ],
  // PKCE for every authorization code, public client or not (oidc-provider supports S256 only).
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true }, // its login page; passwords are checked below
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // A request without resource= is for relayshop: the token is still a JWT for it.
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, resourceIndicator) {
        if (resourceIndicator !== RESOURCE) {
          throw new errors.InvalidTarget(); // RFC 8707 section 2: invalid_target
        }
        return {
          audience: RESOURCE,
          scope: RESOURCE_SCOPE,
          accessTokenTTL: ACCESS_TOKEN_TTL,
          accessTokenFormat: 'jwt', // RFC 9068, typ at+jwt
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // The roles claim relayshop reads (roles_claim "roles"): the account's, or a machine client's.
  async extraTokenClaims(ctx, token) {
    const roles = token.accountId
      ? ACCOUNTS[token.accountId]?.roles
      : CLIENT_ROLES[token.clientId];
    return { roles: roles ?? [] };
  },
  async findAccount(ctx, id) {
    if (!Object.hasOwn(ACCOUNTS, id)) return undefined;
    // Only sub: relayshop copies no name or email, so none is offered.
    return { accountId: id, claims: async () => ({ sub: id }) };
  },
  // The console is relayshop's own client: no consent page, the grant is implied.
  async loadExistingGrant(ctx) {
    const { client, session, result } = ctx.oidc;
    const grantId = result?.consent?.grantId || session.grantIdFor(client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    if (client.clientId !== 'relayshop-console') return undefined;
    const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
    grant.addOIDCScope('openid');
    grant.addResourceScope(RESOURCE, RESOURCE_SCOPE);
    await grant.save();
    return grant;
  },
});

// The development login page accepts any name and password; this checks them first. It reads
// the form itself and hands it on as req.body, which oidc-provider then uses.
provider.use(async (ctx, next) => {
  if (ctx.method !== 'POST' || !/^\/interaction\/[^/]+$/.test(ctx.path)) return next();
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString()));
  ctx.req.body = form;
  if (form.prompt === 'login' && !validPassword(form.login, form.password)) {
    ctx.status = 401;
    ctx.type = 'text';
    ctx.body = 'Unknown login or wrong password.';
    return undefined;
  }
  return next();
});

function validPassword(login, given) {
  if (typeof login !== 'string' || typeof given !== 'string') return false;
  if (!Object.hasOwn(ACCOUNTS, login)) return false;
  const expected = Buffer.from(password(login));
  const actual = Buffer.from(given);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`relayshop-idp ready ${issuer}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
