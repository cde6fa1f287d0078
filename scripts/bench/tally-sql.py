#!/usr/bin/env python3
"""Writes a pgbench script that runs the SQL of one Tally spend as Tally sends it: BEGIN,
claim-and-lock, the write statement and COMMIT. (The organisation's context is read once per
replica and change of the context, not per spend: OrgContextCache.)

The statements' text is read from the Swift sources, so it cannot drift from them; their
parameters are filled in for one benchmark organisation (pgbench -D orgs=N, seed.sql's
bench_orgs). It tells the cost of Tally's SQL apart from the cost of the service around it.

Usage: tally-sql.py OUT
"""
import re
import sys
from pathlib import Path

STORE = Path(__file__).resolve().parents[2] / 'Sources' / 'TallyStore'


def source(name):
    return (STORE / name).read_text()


def statement(text, name):
    """The SQL of `struct name`: its first triple-quoted string."""
    start = text.index('"""', text.index('struct ' + name)) + 3
    return text[start:text.index('"""', start)]


def constant(text, name, pattern=r'"([^"]+)"'):
    return re.search(r'static let ' + name + r' = ' + pattern, text).group(1)


def ledger_rows():
    """The one ledger writer's parts (LedgerRows.sql(first: 1)): its placeholders \\(p[i]) are $(i + 1)."""
    text = source('LedgerRows.swift')
    start = text.index('"""', text.index('static func sql(first')) + 3
    parts = text[start:text.index('"""', start)]
    return re.sub(r'\\\(p\[(\d+)\]\)', lambda match: '$' + str(int(match.group(1)) + 1), parts)


def fingerprint(org):
    """OrgContextFingerprint.expression(org:), for the organisation's alias `org`."""
    text = source('OrgContextCache.swift')
    expression = re.search(r'static func expression\(org: String\) -> String \{\s*"(.*)"\s*\}', text).group(1)
    return expression.replace('\\(org)', org)


def fingerprint_sources(org):
    """OrgContextFingerprint.sources(org:), for the organisation's alias `org`."""
    text = source('OrgContextCache.swift')
    start = text.index('"""', text.index('static func sources(org')) + 3
    return text[start:text.index('"""', start)].replace('\\(org)', org)


buckets, outbox = source('BucketQueries.swift'), source('EventOutbox.swift')
INTERPOLATED = {
    'OrgContextFingerprint.expression(org: "o")': fingerprint('o'),
    'OrgContextFingerprint.expression(org: "g")': fingerprint('g'),
    'OrgContextFingerprint.sources(org: "g")': fingerprint_sources('g'),
    'LedgerRows.sql(first: 1)': ledger_rows(),
    'BucketQueries.columns': constant(buckets, 'columns'),
    'BucketQueries.burnOrder': constant(buckets, 'burnOrder'),
    'BucketQueries.spendableBucketsMaximum': constant(buckets, 'spendableBucketsMaximum', r'(\d+)'),
    'EventOutbox.deliveryColumns': constant(outbox, 'deliveryColumns'),
}


def command(sql, parameters):
    """One line (pgbench reads a command per line), constants and parameters filled in."""
    for name, value in INTERPOLATED.items():
        sql = sql.replace('\\(' + name + ')', value)
    if '\\(' in sql:
        sys.exit('tally-sql.py: an interpolation it does not know: ' + sql[sql.index('\\('):][:60])
    sql = re.sub(r'\$(\d+)', lambda match: parameters[int(match.group(1))], sql)
    return ' '.join(line.strip() for line in sql.strip().splitlines()) + ';'


ORG = '(SELECT org_id FROM bench_orgs WHERE n = :n)'
BUCKET = '(SELECT bucket_id FROM bench_orgs WHERE n = :n)'
ENTRY = "md5(:e || '-' || :client_id)::uuid"      # the same id in the entry and its posting
KEY = "('k' || :e || '-' || :client_id)"
NULLS = 'ARRAY[NULL]'

# Tally carries the spends of every organisation waiting in one transaction; one spend alone is
# the case that costs most per spend, and the one measured here.
claim = {1: f'ARRAY[{ORG}]', 2: f'ARRAY[{KEY}]', 3: "ARRAY['\\x00'::bytea]", 4: 'ARRAY[now()]', 5: f'ARRAY[{ORG}]', 6: 'ARRAY[now()]'}
EMPTY = "'{}'"
write = {
    # the one ledger writer's rows (LedgerRows): the usage entry (organisation, id, type, credits, overage,
    # operation, quantity, params, event id and name, actor, metadata, reason, related entry, hold, invoice, time,
    # the key it was made with: the platform key, no id), no new bucket, the bucket moved, the posting
    1: f'ARRAY[{ORG}]', 2: f'ARRAY[{ENTRY}]', 3: "ARRAY['usage']", 4: 'ARRAY[-0.0001]', 5: 'ARRAY[0]', 6: NULLS, 7: NULLS,
    8: NULLS, 9: NULLS, 10: NULLS, 11: "ARRAY['system']", 12: NULLS, 13: NULLS, 14: NULLS, 15: NULLS, 16: NULLS,
    17: 'ARRAY[now()]', 18: NULLS, 19: "ARRAY['platform']",
    **{n: EMPTY for n in range(20, 32)},
    32: f'ARRAY[{ORG}]', 33: f'ARRAY[{BUCKET}]', 34: 'ARRAY[-0.0001]',
    35: f'ARRAY[{ORG}]', 36: f'ARRAY[{ENTRY}]', 37: f'ARRAY[{BUCKET}]', 38: 'ARRAY[-0.0001]',
    # the stored answer (about the size of a real one)
    39: f'ARRAY[{ORG}]', 40: f'ARRAY[{KEY}]', 41: 'ARRAY[201]', 42: "ARRAY[decode(repeat('ab', 300), 'hex')]",
    # the month's rollup; no live period, no alert thresholds (as the benchmark organisations)
    43: f'ARRAY[{ORG}]', 44: "ARRAY[date_trunc('month', now())::date]", 45: 'ARRAY[0.0001]', 46: 'ARRAY[1]',
    **{n: EMPTY for n in range(47, 56)},
}

spends = source('SpendStatements.swift')
Path(sys.argv[1]).write_text('\n'.join([
    '\\set n random(1, :orgs)',
    '\\set e random(1, 1000000000000)',
    'BEGIN;',
    command(statement(spends, 'ClaimAndLockStatement'), claim),
    command(statement(spends, 'SpendWriteStatement'), write),
    'COMMIT;',
]) + '\n')
