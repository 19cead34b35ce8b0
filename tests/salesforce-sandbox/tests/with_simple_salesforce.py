"""simple-salesforce (PyPI) against the sandbox org: log in with the client-credentials flow,
query_all (following nextRecordsUrl), a queryAll that sees a deleted record, and a collection
update. simple-salesforce always speaks https to *.salesforce.com; a transport adapter sends
every such request to the sandbox on 127.0.0.1 over http instead (nothing leaves the machine).
Prints one JSON line of what it saw."""
import json
import sys
from urllib.parse import urlsplit, urlunsplit

import requests
from simple_salesforce import Salesforce

sandbox, client_id, client_secret, deleted_id = sys.argv[1:5]
target = urlsplit(sandbox)


class ToSandbox(requests.adapters.HTTPAdapter):
    def send(self, request, **kwargs):
        parts = urlsplit(request.url)
        request.url = urlunsplit(("http", target.netloc, parts.path, parts.query, ""))
        return super().send(request, **kwargs)


session = requests.Session()
session.mount("https://", ToSandbox())
sf = Salesforce(consumer_key=client_id, consumer_secret=client_secret,
                domain="sandbox-org.my", session=session, version="63.0")
leads = sf.query_all("SELECT Id, Email, Company FROM Lead WHERE IsConverted = false")
contacts = sf.query_all("SELECT Id, Account.Name FROM Contact")
deleted = sf.query_all(f"SELECT Id, IsDeleted FROM Lead WHERE Id = '{deleted_id}'",
                       include_deleted=True)
first = [r["Id"] for r in leads["records"][:3]]
answer = sf.restful("composite/sobjects", method="PATCH", json={
    "allOrNone": False,
    "records": [{"attributes": {"type": "Lead"}, "id": i, "Title": "Updated by simple-salesforce"}
                for i in first],
})
print(json.dumps({
    "leads": leads["totalSize"],
    "lead_records": len(leads["records"]),
    "contacts": contacts["totalSize"],
    "account_name": contacts["records"][0]["Account"]["Name"] if contacts["records"] else None,
    "deleted_seen": deleted["totalSize"],
    "updated": [r["success"] for r in answer],
    "updated_ids": first,
}))
