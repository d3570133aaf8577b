#!/usr/bin/env python3
"""Drive a running `ferry agent` with pyzmq, the way the thesis' Python controllers did,
and check the documented replies (docs/AGENT-PROTOCOL.md): thesis commands, an unknown
command, malformed bodies, a wrong key, a retry (answered from the reply cache), a reused
nonce, a request for another agent and a reply fed back as a request. The agent must answer
every one and keep serving. Exit status 0 when every check passed; one line per check.

usage: pyzmq_agent_check.py ENDPOINT KEYFILE [--name AGENT] [--no-modem]
  --name: the agent's identity (its `ferry agent --name`; default "agent").
  --no-modem: the agent has no modem program, so start_d2d must fail cleanly.
"""
import hashlib, hmac, json, os, struct, sys, time

import zmq

TAG = b"ferry/2"
ME = "pyzmq"


def load_key(path):
    raw = open(path, "rb").read().strip()
    try:
        return bytes.fromhex(raw.decode())
    except ValueError:
        return raw


def mac(key, header, body):
    msg = b"".join(struct.pack(">I", len(p)) + p for p in (TAG, header, body))
    return hmac.new(key, msg, hashlib.sha256).hexdigest().encode()


def seal(key, body, to, nonce=None, dir="req", re=None):
    h = {"ts": int(time.time() * 1000), "nonce": nonce or os.urandom(16).hex(),
         "dir": dir, "to": to, "from": ME}
    if re is not None:
        h["re"] = re
    header = json.dumps(h).encode()
    return [TAG, header, body, mac(key, header, body)], h["nonce"]


def open_reply(key, frames, nonce, peer, me=ME):
    if len(frames) != 4 or frames[0] != TAG:
        raise ValueError("not a ferry/2 message")
    _, header, body, tag = frames
    if not hmac.compare_digest(tag, mac(key, header, body)):
        raise ValueError("bad MAC")
    h = json.loads(header)
    if h.get("dir") != "rep" or h.get("from") != peer or h.get("to") != me:
        raise ValueError(f"not a reply from {peer} to {me}: {h}")
    if h.get("re") != nonce:
        raise ValueError("reply to another request")
    return json.loads(body)


class Agent:
    def __init__(self, endpoint, key, name):
        self.ctx = zmq.Context.instance()
        self.endpoint, self.key, self.name = endpoint, key, name
        self.sock = None

    def _socket(self):
        if self.sock is None:
            self.sock = self.ctx.socket(zmq.REQ)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.connect(self.endpoint)
        return self.sock

    def raw(self, frames, timeout_ms=15000):
        s = self._socket()
        s.send_multipart(frames)
        if not s.poll(timeout_ms):
            s.close()
            self.sock = None  # Lazy Pirate: a fresh REQ socket next time
            raise TimeoutError("no reply")
        return s.recv_multipart()

    def frames(self, frames, nonce, me=ME):
        return open_reply(self.key, self.raw(frames), nonce, self.name, me)

    def body(self, body, sign_key=None):
        frames, nonce = seal(sign_key or self.key, body, self.name)
        return self.frames(frames, nonce)

    def call(self, req):
        return self.body(json.dumps(req).encode())


failures = 0


def check(name, reply, **expect):
    global failures
    bad = {k: (reply.get(k), v) for k, v in expect.items()
           if (reply.get(k) != v if not callable(v) else not v(reply.get(k)))}
    shape_ok = (reply.get("ok") is True and "kind" not in reply and "error" not in reply) or (
        reply.get("ok") is False and isinstance(reply.get("kind"), str)
        and isinstance(reply.get("error"), str))
    if bad or not shape_ok:
        failures += 1
        print(f"FAIL {name}: {reply} (mismatch {bad}, shape ok {shape_ok})")
    else:
        print(f"ok   {name}: {json.dumps(reply)}")


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    endpoint, key = sys.argv[1], load_key(sys.argv[2])
    no_modem = "--no-modem" in sys.argv
    name = sys.argv[sys.argv.index("--name") + 1] if "--name" in sys.argv else "agent"
    a = Agent(endpoint, key, name)
    control = {"workmode": 1, "phy_cell_ID": 301, "group_ID": 100, "cell_ID": 1, "CPtype": 0,
               "BW": 5, "RBIdx": 25, "duplexMode": 0, "numAntennaTX": 1, "numAntennaRX": 1,
               "DLULAssign": 1, "trans_mode": 1, "type_mode": 2, "RNTI": 4660}

    check("status", a.call({"cmd": "status"}), ok=True, cmd="status",
          result=lambda r: isinstance(r, dict) and "d2d" in r and "eth3" in r)
    check("set_tun_ip", a.call({"cmd": "set_tun_ip", "tun_ip": "192.168.40.9"}), ok=True)
    check("get_tun_ip", a.call({"cmd": "get_tun_ip"}), ok=True, result="192.168.40.9")
    check("set_route", a.call({"cmd": "set_route", "route_list": [[3, 1], [4, 1]]}), ok=True)
    check("get_route", a.call({"cmd": "get_route"}), ok=True, result=[[3, 1], [4, 1]])
    check("make_usrp", a.call({"cmd": "make_usrp"}), ok=True, cmd="make_usrp")
    check("link_usrp", a.call({"cmd": "link_usrp"}), ok=True)
    check("status after link", a.call({"cmd": "status"}), ok=True,
          result=lambda r: r.get("eth3") == "192.168.10.1" and r.get("usrp") is True)
    if no_modem:
        check("start_d2d (no modem)", a.call({"cmd": "start_d2d", "control_flag": 1, "Control": control}),
              ok=False, kind="failed")
    else:
        check("start_d2d warm", a.call({"cmd": "start_d2d", "control_flag": 1, "Control": control}),
              ok=True)
        check("get_control", a.call({"cmd": "get_control"}), ok=True,
              result=lambda r: isinstance(r, dict) and r.get("phy_cell_ID") == 301)
        check("kill_d2d", a.call({"cmd": "kill_d2d"}), ok=True)
    check("kill_usrp", a.call({"cmd": "kill_usrp"}), ok=True)
    check("double_kill", a.call({"cmd": "double_kill"}), ok=True)
    check("status parked", a.call({"cmd": "status"}), ok=True,
          result=lambda r: r.get("eth3") != "192.168.10.1" and r.get("d2d") is False)

    # Unknown and malformed requests: documented replies, nothing done.
    check("unknown command", a.call({"cmd": "format_disk"}), ok=False, cmd="format_disk",
          kind="wrong_command", error="wrong command")
    check("not JSON", a.body(b"\xff\xfe not json"), ok=False, cmd="", kind="bad_request",
          error=lambda e: e.startswith("not JSON"))
    check("no cmd", a.call({"tun_ip": "1.2.3.4"}), ok=False, kind="bad_request")
    check("bad tun_ip", a.call({"cmd": "set_tun_ip", "tun_ip": "1.2.3"}), ok=False,
          cmd="set_tun_ip", kind="bad_request")
    check("extra field", a.call({"cmd": "kill_d2d", "now": True}), ok=False, kind="bad_request")
    bad = dict(control, phy_cell_ID=504)
    check("invalid Control", a.call({"cmd": "start_d2d", "control_flag": 1, "Control": bad}),
          ok=False, kind="bad_request", error=lambda e: "phy_cell_ID = 504" in e)
    check("control_flag 2", a.call({"cmd": "start_d2d", "control_flag": 2}), ok=False,
          kind="bad_request")

    # A stranger with another key: refused; the reply is still addressed to its nonce.
    frames, nonce = seal(b"not-the-key-0123456789", b'{"cmd":"kill_d2d"}', name)
    check("wrong key", a.frames(frames, nonce), ok=False, cmd="", kind="unauthorized")
    # The same request twice (a Lazy Pirate retry): the same reply, run once.
    frames, nonce = seal(key, b'{"cmd":"status"}', name)
    first = a.raw(frames)
    check("first copy", open_reply(key, first, nonce, name), ok=True)
    again = a.raw(frames)
    check("retry gets the cached reply", open_reply(key, again, nonce, name), ok=True,
          result=lambda r: again == first)
    # The same nonce with another body: a replay.
    frames, _ = seal(key, b'{"cmd":"double_kill"}', name, nonce=nonce)
    check("reused nonce", a.frames(frames, nonce), ok=False, kind="unauthorized",
          error=lambda e: "replay" in e)
    # Signed for another agent: refused.
    frames, n2 = seal(key, b'{"cmd":"kill_usrp"}', "some-other-agent")
    check("other recipient", a.frames(frames, n2), ok=False, kind="unauthorized",
          error=lambda e: "addressed to" in e)
    # The agent's own reply fed back as a request: refused (the refusal is addressed to
    # the sender the reply names, the agent itself, and to the reply's nonce).
    h = json.loads(first[1])
    check("reply as request", open_reply(key, a.raw(first), h["nonce"], name, me=h["from"]),
          ok=False, kind="unauthorized", error=lambda e: "Reply" in e)
    # Two frames only.
    s = a._socket()
    s.send_multipart([TAG, b"{}"])
    if s.poll(5000):
        f = s.recv_multipart()
        check("two frames", json.loads(f[2]), ok=False, kind="unauthorized")
    else:
        print("FAIL two frames: no reply")
        failures_inc()

    check("still serving", a.call({"cmd": "status"}), ok=True)
    print("all checks passed" if failures == 0 else f"{failures} checks FAILED")
    return 0 if failures == 0 else 1


def failures_inc():
    global failures
    failures += 1


if __name__ == "__main__":
    sys.exit(main())
