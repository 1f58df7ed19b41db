"""The deployer: a registry webhook receiver. When an image promoted to the
release repository is also signed (the registry announces PROMOTION and
IMAGE_SIGNED, in either order), it asks the registry's admission webhook,
as a cluster's API server would, whether a Deployment of that image by its
release tag may run, and logs the verdict.

Every delivery must carry a valid X-Portcullis-Signature (HMAC-SHA-256 of
"<timestamp>.<delivery>.<event>.<body>" with the hook's secret) from the
last five minutes; anything else is refused with 401 and ignored.

Usage: deployer.py HOST:PORT REGISTRY RELEASE_REPOSITORY LOG
Environment: DEPLOY_TOKEN (the cluster's API token for the admission
webhook), WEBHOOK_SECRET (the hook's secret).
"""
import hashlib
import hmac
import http.server
import json
import os
import sys
import time
import urllib.request

registry, release, log = sys.argv[2], sys.argv[3], sys.argv[4]
token = os.environ["DEPLOY_TOKEN"]
secret = os.environ["WEBHOOK_SECRET"].encode()
promoted = {}  # image digest -> the release tag it was promoted to
signed = set()  # image digests signed in the release repository
deployed = set()


def admission_review(image):
    """The AdmissionReview a Kubernetes API server sends for a Deployment."""
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "app", "namespace": "prod"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "app"}},
                 "template": {"metadata": {"labels": {"app": "app"}},
                              "spec": {"containers": [{"name": "app", "image": image}]}}},
    }
    review = {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": image, "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                    "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
                    "namespace": "prod", "operation": "CREATE", "object": deployment},
    }
    request = urllib.request.Request(
        f"http://{registry}/api/v1/admission", data=json.dumps(review).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["response"]


def deploy_when_ready(digest):
    if digest in promoted and digest in signed and digest not in deployed:
        deployed.add(digest)
        image = f"{registry}/{release}:{promoted[digest]}"
        verdict = admission_review(image)
        word = "ALLOWED" if verdict["allowed"] else "DENIED"
        with open(log, "a") as f:
            f.write(f"{word} {image} {digest} {verdict.get('status', {}).get('message', '')}\n")


def authentic(headers, body):
    try:
        ts, delivery, event = (headers[f"X-Portcullis-{h}"] for h in ("Timestamp", "Delivery", "Event"))
        signed_text = f"{ts}.{delivery}.{event}.".encode() + body
        good = "sha256=" + hmac.new(secret, signed_text, hashlib.sha256).hexdigest()
        return hmac.compare_digest(good, headers["X-Portcullis-Signature"]) and abs(time.time() - int(ts)) < 300
    except (KeyError, TypeError, ValueError):
        return False


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if not authentic(self.headers, body):
            self.send_response(401)
            self.end_headers()
            return
        event = json.loads(body)
        self.send_response(204)
        self.end_headers()
        if event["repository"] != release:
            return
        if event["type"] == "PROMOTION":
            promoted[event["digest"]] = event["tag"]
        elif event["type"] == "IMAGE_SIGNED":
            signed.add(event["digest"])
        deploy_when_ready(event["digest"])

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    host, port = sys.argv[1].rsplit(":", 1)
    http.server.HTTPServer((host, int(port)), Receiver).serve_forever()
