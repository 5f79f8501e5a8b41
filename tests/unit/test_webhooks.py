import time

import pytest

from service.webhooks import VerificationError, sign, verify


def test_standard_webhooks_spec_vector():
    # https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
    assert sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                '{"test": 2432232314}') == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_roundtrip_and_tamper():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    ts = int(time.time())
    body = b'{"type":"job.completed"}'
    hdr = {"webhook-id": "msg_1", "webhook-timestamp": str(ts), "webhook-signature": sign(secret, "msg_1", ts, body)}
    assert verify(secret, hdr, body)["type"] == "job.completed"
    with pytest.raises(VerificationError):
        verify(secret, hdr, body + b" ")
    with pytest.raises(VerificationError):
        verify(secret, {**hdr, "webhook-timestamp": str(ts - 3600)}, body)
