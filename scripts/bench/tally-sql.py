#!/usr/bin/env python3
"""Writes a pgbench script that runs the SQL of one Tally spend as Tally sends it: the
organisation's context, then BEGIN, claim-and-lock, the write statement and COMMIT.

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


buckets, outbox = source('BucketQueries.swift'), source('EventOutbox.swift')
INTERPOLATED = {
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

context = {1: ORG, 2: KEY}     # a spend sends its key: the context read looks for a stored answer
# Tally carries the spends of every organisation waiting in one transaction; one spend alone is
# the case that costs most per spend, and the one measured here.
claim = {1: f'ARRAY[{ORG}]', 2: f'ARRAY[{KEY}]', 3: "ARRAY['\\x00'::bytea]", 4: 'ARRAY[now()]', 5: f'ARRAY[{ORG}]', 6: 'ARRAY[now()]'}
EMPTY = "'{}'"
write = {
    # the usage entry: organisation, id, credits, overage, operation, quantity, params, event id and name, actor,
    # metadata, invoice, the key it was made with (the platform key: no id), its time
    1: f'ARRAY[{ORG}]', 2: f'ARRAY[{ENTRY}]', 3: 'ARRAY[-0.0001]', 4: 'ARRAY[0]', 5: NULLS, 6: NULLS, 7: NULLS, 8: NULLS,
    9: NULLS, 10: "ARRAY['system']", 11: NULLS, 12: NULLS, 13: NULLS, 14: "ARRAY['platform']", 15: 'ARRAY[now()]',
    # the bucket moved, the posting, the stored answer (about the size of a real one)
    16: f'ARRAY[{ORG}]', 17: f'ARRAY[{BUCKET}]', 18: 'ARRAY[-0.0001]',
    19: f'ARRAY[{ORG}]', 20: f'ARRAY[{ENTRY}]', 21: f'ARRAY[{BUCKET}]', 22: 'ARRAY[-0.0001]',
    23: f'ARRAY[{ORG}]', 24: f'ARRAY[{KEY}]', 25: 'ARRAY[201]', 26: "ARRAY[decode(repeat('ab', 300), 'hex')]",
    # the month's rollup; no live period, no alert thresholds (as the benchmark organisations)
    27: f'ARRAY[{ORG}]', 28: "ARRAY[date_trunc('month', now())::date]", 29: 'ARRAY[0.0001]', 30: 'ARRAY[1]',
    31: EMPTY, 32: EMPTY, 33: EMPTY, 34: EMPTY, 35: EMPTY, 36: EMPTY, 37: EMPTY, 38: EMPTY, 39: EMPTY,
}

spends, orgs = source('SpendStatements.swift'), source('OrgStore.swift')
Path(sys.argv[1]).write_text('\n'.join([
    '\\set n random(1, :orgs)',
    '\\set e random(1, 1000000000000)',
    command(statement(orgs, 'OrgContextStatement'), context),
    'BEGIN;',
    command(statement(spends, 'ClaimAndLockStatement'), claim),
    command(statement(spends, 'SpendWriteStatement'), write),
    'COMMIT;',
]) + '\n')
