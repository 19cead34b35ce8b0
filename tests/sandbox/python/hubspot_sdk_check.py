"""HubSpot's official Python SDK against the leadsync sandbox.

Usage: python3 hubspot_sdk_check.py BASE_URL TOKEN EXPECTED_CONTACTS

Searches contacts with paging, batch-reads some, batch-updates some, and prints one JSON line
with what it saw. The API classes are built from a Configuration whose host is the sandbox (see
APIS.md: setting the host on the top-level client does not stick). Only loopback is allowed.
"""
import json
import sys

from hubspot.crm.contacts import (
    ApiClient,
    BatchApi,
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    Configuration,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SearchApi,
    SimplePublicObjectBatchInput,
    SimplePublicObjectId,
)

base, token, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
if not (base.startswith("http://127.0.0.1:") or base.startswith("http://localhost:")):
    sys.exit(f"refusing a non-loopback host: {base}")

config = Configuration(host=base)
config.access_token = token
client = ApiClient(configuration=config)
search, batch = SearchApi(api_client=client), BatchApi(api_client=client)

ids, after, pages = [], None, 0
while True:
    request = PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[Filter(property_name="lastmodifieddate", operator="GTE", value="0")])],
        sorts=["hs_object_id"],
        properties=["email", "jobtitle"],
        limit=100,
        after=after,
    )
    page = search.do_search(public_object_search_request=request)
    pages += 1
    ids.extend(r.id for r in page.results)
    if page.paging is None or page.paging.next is None:
        break
    after = page.paging.next.after

read = batch.read(
    batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
        properties=["email", "jobtitle"], properties_with_history=[], inputs=[SimplePublicObjectId(id=i) for i in ids[:50]]
    )
)
updated = batch.update(
    batch_input_simple_public_object_batch_input=BatchInputSimplePublicObjectBatchInput(
        inputs=[SimplePublicObjectBatchInput(id=i, properties={"jobtitle": "Updated by SDK"}) for i in ids[:10]]
    )
)
print(json.dumps({
    "total": page.total,
    "pages": pages,
    "ids": len(ids),
    "unique": len(set(ids)),
    "expected": expected,
    "read": len(read.results),
    "updated": len(updated.results),
    "updated_jobtitles": sorted({r.properties.get("jobtitle") for r in updated.results}),
}))
