#!/usr/bin/env python3
"""Checks that the end-to-end test notices a skipped pipeline stage.

Applies one mutation at a time (pull, company data, scoring inputs, record, push, snapshot
skipped), runs the nightly_sync e2e test, and restores the file. Every line must say
"e2e FAILS (good)". Run from anywhere: python3 tests/e2e/mutations.py
"""
import subprocess, os
root = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
muts = [
 ("pull skipped", "shared/pipeline/src/sync.rs", "let mut leads = page.leads;", "let mut leads: Vec<leadsync_domain::Lead> = { let _ = page.leads; Vec::new() };"),
 ("company data skipped", "shared/hubspot/src/client.rs", "let companies = if company_ids.is_empty()", "let companies = if true"),
 ("enrich/score inputs dropped", "shared/pipeline/src/sync.rs", "let card = deps.criteria.evaluate(&lead);", "let card = deps.criteria.evaluate(&leadsync_domain::Lead::new(lead.id.clone(), lead.modified_at));"),
 ("record skipped", "shared/pipeline/src/sync.rs", ".record(&states, &transitions)", ".record(&[], &[])"),
 ("push skipped", "shared/pipeline/src/sync.rs", "let outcome = deps.crm.push(&batch).await.map_err(SyncError::Push)?;", "let outcome = { let _ = &batch; leadsync_domain::ports::PushOutcome::default() };"),
 ("snapshot skipped", "shared/pipeline/src/sync.rs", ".put_snapshot(&key, &snapshot)", ".put_snapshot(&key, &[])"),
]
env = dict(os.environ, AWS_EC2_METADATA_DISABLED="true", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
for name, path, old, new in muts:
    p = os.path.join(root, path); src = open(p).read()
    if old not in src:
        print(f"{name}: PATTERN NOT FOUND"); continue
    open(p, 'w').write(src.replace(old, new, 1))
    try:
        r = subprocess.run(["cargo", "test", "--workspace", "--test", "nightly_sync"], cwd=root, env=env, capture_output=True, text=True)
        out = r.stdout + r.stderr
        failed = [l for l in out.splitlines() if "panicked at" in l or "error[" in l]
        print(f"{name}: exit {r.returncode} -> {'e2e FAILS (good)' if r.returncode != 0 else 'e2e PASSES (BAD)'}; {failed[:1]}", flush=True)
    finally:
        open(p, 'w').write(src)
