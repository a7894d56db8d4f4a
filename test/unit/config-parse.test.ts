// Unit tests of the pgpool.conf lexer: quoting, escapes, comments, bare values, units, line
// endings, and syntax errors reported with file:line, all of them at once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, formatProblem, parseConfig, scanConfig } from '../../src/config/parse.ts';
import { ProxyError } from '../../src/errors/proxy-error.ts';

function one(text: string): { name: string; value: string; quoted: boolean } {
  const lines = parseConfig(text, 'pgpool.conf');
  assert.equal(lines.length, 1, `expected one line from ${JSON.stringify(text)}`);
  const l = lines[0]!;
  return { name: l.name, value: l.value, quoted: l.quoted };
}

test('name = value, name=value and name value all work', () => {
  assert.deepEqual(one('port = 5433'), { name: 'port', value: '5433', quoted: false });
  assert.deepEqual(one('port=5433'), { name: 'port', value: '5433', quoted: false });
  assert.deepEqual(one('port 5433'), { name: 'port', value: '5433', quoted: false });
  assert.deepEqual(one('\t  port\t=\t5433  '), { name: 'port', value: '5433', quoted: false });
});

test('names keep their spelling (case is resolved later)', () => {
  assert.equal(one("delegate_IP = ''").name, 'delegate_IP');
});

test('single-quoted strings: doubled quotes and backslash escapes as postgresql.conf', () => {
  assert.deepEqual(one("s = 'it''s'"), { name: 's', value: "it's", quoted: true });
  assert.equal(one("s = 'it\\'s'").value, "it's");
  assert.equal(one("s = 'back\\\\slash'").value, 'back\\slash');
  assert.equal(one("s = 'a\\nb\\tc\\rd\\be\\ff'").value, 'a\nb\tc\rd\be\ff');
  assert.equal(one("s = '\\101\\60x'").value, 'A0x', 'octal escapes, up to three digits');
  assert.equal(one("s = '\\q'").value, 'q', 'unknown escapes yield the character');
  assert.equal(one("s = ''").value, '');
  assert.equal(one("s = ''''").value, "'");
});

test('# starts a comment outside quotes only', () => {
  assert.deepEqual(one("log_line_prefix = '%t # not a comment' # a comment"), {
    name: 'log_line_prefix',
    value: '%t # not a comment',
    quoted: true,
  });
  assert.equal(one('port = 5433# comment right after').value, '5433');
  assert.deepEqual(parseConfig('# only a comment\n   # indented comment\n\n   \n', 'f'), []);
});

test('bare values: identifiers, unquoted strings, integers, hex, reals, numbers with units', () => {
  for (const v of ['on', 'off', 'ALLOW_TO_FAILOVER', 'catalog', 'host-1.example.com', 'a/b:c', 'LOCAL0']) {
    assert.equal(one(`x = ${v}`).value, v);
  }
  for (const v of ['0', '-1', '+5', '5432', '0600', '0x1F', '0.5', '.5', '1.', '1.5e3', '-2.5E-1']) {
    assert.equal(one(`x = ${v}`).value, v);
  }
  for (const v of ['10s', '500ms', '5min', '1h', '1d', '10MB', '400kB', '1.5min']) {
    assert.deepEqual(one(`x = ${v}`), { name: 'x', value: v, quoted: false });
  }
});

test('line numbers count every line, and CRLF endings and a BOM are accepted', () => {
  const text = '\uFEFF# header\r\n\r\nport = 5433\r\nlisten_addresses = \'*\'\r\n  \r\nmax_pool 2\r\n';
  const lines = parseConfig(text, 'pgpool.conf');
  assert.deepEqual(
    lines.map((l) => [l.line, l.name, l.value, l.quoted]),
    [
      [3, 'port', '5433', false],
      [4, 'listen_addresses', '*', true],
      [6, 'max_pool', '2', false],
    ],
  );
  assert.ok(lines.every((l) => l.file === 'pgpool.conf'));
});

test('a syntax error is reported as file:line: message and is a ConfigError (ProxyError F0000)', () => {
  const text = 'port = 5433\n'.repeat(11) + "log_line_prefix = 'oops\n";
  assert.throws(
    () => parseConfig(text, 'pgpool.conf'),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.ok(err instanceof ProxyError);
      assert.ok(err instanceof Error);
      assert.equal(err.code, 'F0000');
      assert.equal(err.message, 'pgpool.conf:12: syntax error: unterminated quoted string');
      assert.deepEqual(err.problems, [{ file: 'pgpool.conf', line: 12, message: 'syntax error: unterminated quoted string' }]);
      return true;
    },
  );
});

test('every syntax problem of a file is collected, in order', () => {
  const text = [
    "a = 'unterminated", // 1
    'port = 5433', // 2 fine
    'b =', // 3 missing value
    "c = 'x' d", // 4 trailing text
    'listen_addresses = *', // 5 must be quoted
    '= 5', // 6 no name
    "e = 'ends with backslash\\", // 7
    'f = /tmp', // 8 must be quoted (does not start with a letter)
    'g = 1e', // 9 fine here: a number with unit letters, checked by load.ts
  ].join('\n');
  const { lines, problems } = scanConfig(text, 'pgpool.conf');
  assert.deepEqual(
    problems.map(formatProblem),
    [
      'pgpool.conf:1: syntax error: unterminated quoted string',
      'pgpool.conf:3: syntax error: missing value for "b"',
      'pgpool.conf:4: syntax error: unexpected text after the value of "c"',
      'pgpool.conf:5: syntax error: the value of "listen_addresses" must be quoted',
      'pgpool.conf:6: syntax error: expected a parameter name',
      'pgpool.conf:7: syntax error: unterminated quoted string',
      'pgpool.conf:8: syntax error: the value of "f" must be quoted',
    ],
  );
  assert.deepEqual(
    lines.map((l) => l.name),
    ['port', 'g'],
    'good lines are still returned',
  );
  assert.throws(() => parseConfig(text, 'pgpool.conf'), (e: unknown) => e instanceof ConfigError && e.problems.length === 7);
});

test('syntax errors never echo the offending text (it may be a password)', () => {
  const text = "sr_check_password = hunter2 extra\nhealth_check_password = s3cr!t\nwd_authkey = 'k3y";
  const { problems } = scanConfig(text, 'pgpool.conf');
  assert.equal(problems.length, 3);
  const all = problems.map(formatProblem).join('\n');
  for (const secret of ['hunter2', 'extra', 's3cr', 'k3y']) assert.ok(!all.includes(secret), `${secret} leaked: ${all}`);
});
