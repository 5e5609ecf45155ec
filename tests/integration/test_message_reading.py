"""How the server reads WebSocket messages: an idle connection holds no read buffer (it waits for
the first byte of the next message, then reads the rest), so whatever shape a message arrives in
after a quiet spell must still be read whole: a large message over many TCP segments, several
messages in one segment, fragmented messages (with control frames between the fragments), an
empty first fragment."""

import json
import time
import unittest

from harness import RawWebSocket, ServerTestCase, data_change

TEXT, CONTINUATION, PING, PONG = 0x1, 0x0, 0x9, 0xA


def read_until(raw, want):
    """Reads frames until `want(texts, pongs)` is true; returns (texts as JSON, pong payloads).
    Pings from the server are skipped; the connection must not end first."""
    texts, pongs = [], []
    while not want(texts, pongs):
        frame = raw.read_frame()
        if frame is None:
            raise AssertionError(f"connection ended; so far {texts} {pongs}")
        opcode, payload = frame
        if opcode == TEXT:
            texts.append(json.loads(payload))
        elif opcode == PONG:
            pongs.append(payload)
        elif opcode != PING:
            raise AssertionError(f"unexpected frame {opcode:#x} {payload[:80]!r}")
    return texts, pongs


def acks(texts):
    return {m["change_id"]: m["status"] for m in texts if m.get("type") == "ack"}


def has_acks(*change_ids):
    return lambda texts, pongs: set(change_ids) <= set(acks(texts))


class MessageReadingTest(ServerTestCase):

    def test_large_message_after_idling(self):
        server = self.start_server(store="memory")
        raw = server.raw_ws("R", "big")
        try:
            raw.send_text({"type": "heartbeat"})
            read_until(raw, lambda t, p: any(m.get("type") == "heartbeat_response" for m in t))
            # Quiet for a moment: the server is now waiting for the next message's first byte.
            time.sleep(0.5)
            note = "n" * 60000  # far beyond a frame buffer: many segments, read after the first byte
            raw.send_text(data_change("orders", "o-1", change_id="big-1", note=note))
            texts, _ = read_until(raw, has_acks("big-1"))
            self.assertEqual(acks(texts), {"big-1": "applied"})
            time.sleep(0.5)
            raw.send_text(data_change("orders", "o-2", change_id="small-1", status="open"))
            texts, _ = read_until(raw, has_acks("small-1"))
            self.assertEqual(acks(texts)["small-1"], "applied")
        finally:
            raw.close()
        stored = {e["change_id"]: e for e in server.all_changes("R")}
        self.assertEqual(stored["big-1"]["data"]["note"], note)
        self.assertEqual(stored["small-1"]["data"]["status"], "open")

    def test_messages_in_one_segment_and_fragmented(self):
        server = self.start_server(store="memory")
        raw = server.raw_ws("R", "frames")
        try:
            first = json.dumps(data_change("tables", "t-1", change_id="one", state="a")).encode()
            second = json.dumps(data_change("tables", "t-2", change_id="two", state="b")).encode()
            third = json.dumps(data_change("tables", "t-3", change_id="three", state="c")).encode()
            frame = RawWebSocket.encode_frame
            raw.sock.sendall(
                # Two whole messages and a ping in one send: the second message and the ping
                # arrive with the first one's bytes.
                frame(TEXT, first) + frame(TEXT, second) + frame(PING, b"p1") +
                # A message in fragments whose first fragment is one byte, with a ping between
                # fragments and an empty fragment.
                frame(TEXT, third[:1], fin=False) + frame(PING, b"p2") +
                frame(CONTINUATION, b"", fin=False) + frame(CONTINUATION, third[1:]))
            texts, pongs = read_until(
                raw, lambda t, p: has_acks("one", "two", "three")(t, p) and len(p) == 2)
            self.assertEqual(acks(texts), {"one": "applied", "two": "applied", "three": "applied"})
            self.assertEqual(pongs, [b"p1", b"p2"])
            self.assertEqual([m for m in texts if m.get("type") == "error"], [])

            # A message whose first fragment is empty, after a quiet spell and a lone ping.
            time.sleep(0.5)
            raw.send_frame(PING, b"p3")
            read_until(raw, lambda t, p: p == [b"p3"])
            fourth = json.dumps(data_change("tables", "t-4", change_id="four", state="d")).encode()
            raw.sock.sendall(frame(TEXT, b"", fin=False) + frame(CONTINUATION, fourth))
            texts, _ = read_until(raw, has_acks("four"))
            self.assertEqual(acks(texts), {"four": "applied"})
        finally:
            raw.close()
        self.assertEqual([e["change_id"] for e in server.all_changes("R")],
                         ["one", "two", "three", "four"])


if __name__ == "__main__":
    unittest.main()
