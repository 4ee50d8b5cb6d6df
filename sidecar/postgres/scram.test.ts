import assert from 'node:assert/strict';
import { test } from 'node:test';
import { md5Password, ScramClient, ScramError } from './scram.ts';

// RFC 7677 section 3 example exchange.
const NONCE = 'rOprNGfwEbeRWgbNEkqO';
const SERVER_FIRST = 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';

test('SCRAM-SHA-256 client matches the RFC 7677 example', () => {
  const c = new ScramClient('pencil', NONCE, 'user');
  assert.equal(c.clientFirst(), 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO');
  assert.equal(
    c.clientFinal(SERVER_FIRST),
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  );
  c.verifyServerFinal('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
});

test('a server that does not know the password is caught', () => {
  const c = new ScramClient('pencil', NONCE, 'user');
  c.clientFirst();
  c.clientFinal(SERVER_FIRST);
  assert.throws(() => c.verifyServerFinal('v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='), ScramError);
  assert.throws(
    () => c.verifyServerFinal('e=invalid-proof'),
    /server rejected SCRAM authentication: invalid-proof/,
  );
});

test('a server nonce that does not extend ours is refused', () => {
  const c = new ScramClient('pencil', NONCE, 'user');
  c.clientFirst();
  assert.throws(() => c.clientFinal('r=somethingElse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096'), /does not extend/);
  assert.throws(() => c.clientFinal(`r=${NONCE}x,s=W22ZaJ0SNY7soEsUEjb6gQ==`), /iteration count/);
});

test('md5 password hash as PostgreSQL computes it', () => {
  // md5(md5('secret' + 'bob') + salt), value computed independently with Python's hashlib
  assert.equal(
    md5Password('bob', 'secret', Buffer.from([1, 2, 3, 4])),
    'md5f21dfe33ff3a9e03dbc3e008251fe5cc',
  );
});
