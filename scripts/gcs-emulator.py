#!/usr/bin/env python3
"""Google Cloud Storage emulator for the log stream tests: gcp-storage-emulator (PyPI,
pinned in test.sh), with the ETag header added to its XML API upload answers.

Stele writes objects through the Apache Arrow `object_store` crate, which uploads with the
XML API (`PUT <base>/<bucket>/<percent-encoded object name>`) and, like real Google Cloud
Storage's documented answer to that request, expects an `ETag` header back. gcp-storage-
emulator stores the object but answers without one, so `object_store` reports the upload as
failed. This launcher adds the header (the object's MD5, as GCS's ETag is for a simple
upload) to successful XML API uploads and changes nothing else: routing, storage and the
JSON API the tests read objects back with are the emulator's own.

Usage: gcs-emulator.py --port PORT [--host 127.0.0.1] [--default-bucket NAME]
(run with the Python of the venv gcp-storage-emulator is installed in).
"""

import argparse
import base64
import sys
from http import HTTPStatus

from gcp_storage_emulator import server
from gcp_storage_emulator.handlers import objects

PUT = "PUT"


def xml_upload_with_etag(request, response, storage, *args, **kwargs):
    emulator_xml_upload(request, response, storage, *args, **kwargs)
    if response.status == HTTPStatus.OK:
        stored = storage.get_file_obj(
            request.params["bucket_name"], request.params["object_id"]
        )
        response["ETag"] = '"{}"'.format(base64.b64decode(stored["md5Hash"]).hex())


def install():
    """Replaces the XML API upload handler in the emulator's routing table; fails loudly
    if the emulator's internals are not what this launcher was written against."""
    routes = [
        handlers
        for _, handlers in server.HANDLERS
        if handlers.get(PUT) is objects.xml_upload
    ]
    if len(routes) != 1:
        sys.exit(
            "gcs-emulator.py: gcp-storage-emulator's XML API upload route was not found; "
            "this launcher was written for gcp-storage-emulator 2026.7.19"
        )
    routes[0][PUT] = xml_upload_with_etag


emulator_xml_upload = objects.xml_upload


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--default-bucket")
    options = parser.parse_args()
    install()
    emulator = server.create_server(
        options.host, options.port, in_memory=True, default_bucket=options.default_bucket
    )
    emulator.run()


if __name__ == "__main__":
    main()
