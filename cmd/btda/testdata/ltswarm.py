#!/usr/bin/python3
"""A loopback swarm of libtorrent-rasterbar 2.0 sessions for btda's real-swarm acceptance test.

usage: ltswarm.py DIR MODE TRACKER_URL LEECHERS RATE FORMAT

MODE: encrypted = every session forces MSE/PE (pe_forced both ways, RC4 only) over TCP;
      utp       = the leechers speak uTP only (TCP off both ways); the seeder allows both.
RATE: each leecher's download limit in bytes/s.
FORMAT: v1 or hybrid (libtorrent 2.0's default; aria2 1.36 never joins a hybrid swarm).

One seeder (127.0.0.2) of a generated torrent (64 pieces of 64 KiB) announcing to TRACKER_URL.
Prints JSON lines on stdout:
  {"event": "ready", "torrent": PATH, "infohash": V1 HEX (the torrent is hybrid), "seeder": "IP:PORT", "pieces": N}
then waits for a line "start" on stdin, starts LEECHERS leechers (127.0.0.10, .11, ...), and prints
  {"event": "started", "addr": "IP:PORT", "t": UNIX}
  {"event": "progress", "addr": ..., "pieces": n, "peers": n}       (every few seconds)
  {"event": "finished", "addr": ..., "t": UNIX}                     (the ground truth)
Finished leechers keep seeding. Exits when stdin closes. Never leaves loopback: DHT, LSD, UPnP,
NAT-PMP are off and every session listens and dials from its own 127.0.0.N address.
"""
import json
import os
import sys
import threading
import time

import libtorrent as lt

PIECE = 64 << 10
PIECES = 64


def say(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def session(ip, mode, leecher, rate):
    s = {
        "listen_interfaces": ip + ":0",
        "outgoing_interfaces": ip,
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "alert_mask": 0,
        "min_reconnect_time": 1,
        # Loopback peers: every peer is "local", which libtorrent would exempt from rate
        # limits and allow to share an IP; keep its defaults otherwise (one peer per IP).
        "announce_to_all_trackers": True,
    }
    if mode == "encrypted":
        s.update({"out_enc_policy": int(lt.enc_policy.pe_forced),
                  "in_enc_policy": int(lt.enc_policy.pe_forced),
                  "allowed_enc_level": int(lt.enc_level.pe_rc4),
                  "prefer_rc4": True,
                  "enable_outgoing_utp": False, "enable_incoming_utp": False})
    elif mode == "utp":
        if leecher:
            s.update({"enable_outgoing_tcp": False, "enable_incoming_tcp": False})
    else:
        sys.exit("unknown mode " + mode)
    if leecher:
        s["download_rate_limit"] = rate
    ses = lt.session(s)
    # Put every peer, loopback included, in the global peer class so the rate limit applies.
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
    ses.set_peer_class_filter(f)
    return ses


def wait_listening(ses, what):
    for _ in range(200):  # bounded: 20 s
        if ses.listen_port() > 0:
            return ses.listen_port()
        time.sleep(0.1)
    sys.exit(what + " did not start listening")


def main():
    d, mode, tracker, nleech, rate = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    fmt = sys.argv[6]
    seed_dir = os.path.join(d, "seed")
    os.makedirs(seed_dir)
    with open(os.path.join(seed_dir, "payload.bin"), "wb") as f:
        f.write(os.urandom(PIECE * PIECES))
    fs = lt.file_storage()
    lt.add_files(fs, os.path.join(seed_dir, "payload.bin"))
    ct = lt.create_torrent(fs, PIECE, flags=lt.create_torrent.v1_only if fmt == "v1" else 0)
    ct.add_tracker(tracker)
    lt.set_piece_hashes(ct, seed_dir)
    tor = ct.generate()
    path = os.path.join(d, "payload.torrent")
    with open(path, "wb") as f:
        f.write(lt.bencode(tor))
    ti = lt.torrent_info(path)

    seeder = session("127.0.0.2", mode, False, 0)
    sport = wait_listening(seeder, "seeder")
    sh = seeder.add_torrent({"ti": lt.torrent_info(path), "save_path": seed_dir})
    for _ in range(300):  # bounded: 30 s
        if sh.status().is_seeding:
            break
        time.sleep(0.1)
    else:
        sys.exit("seeder did not start seeding")
    say(event="ready", torrent=path, infohash=str(ti.info_hashes().v1), seeder="127.0.0.2:%d" % sport,
        pieces=ti.num_pieces())

    stop = threading.Event()
    leechers = []

    def watch():
        done = set()
        last = 0.0
        while not stop.is_set():
            now = time.time()
            for addr, h in list(leechers):
                st = h.status()
                if addr not in done and (st.is_seeding or st.num_pieces == ti.num_pieces()):
                    done.add(addr)
                    say(event="finished", addr=addr, t=now)
            if now - last >= 3:
                last = now
                for addr, h in list(leechers):
                    st = h.status()
                    say(event="progress", addr=addr, pieces=st.num_pieces, peers=st.num_peers)
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()
    sessions = [seeder]
    for line in sys.stdin:
        if line.strip() != "start" or leechers:
            continue
        for i in range(nleech):
            ip = "127.0.0.%d" % (10 + i)
            ses = session(ip, mode, True, rate)
            port = wait_listening(ses, "leecher " + ip)
            ld = os.path.join(d, "leech%d" % i)
            os.makedirs(ld)
            h = ses.add_torrent({"ti": lt.torrent_info(path), "save_path": ld})
            h.set_download_limit(rate)
            sessions.append(ses)
            addr = "%s:%d" % (ip, port)
            leechers.append((addr, h))
            say(event="started", addr=addr, t=time.time())
    stop.set()
    # libtorrent's teardown can dawdle on loopback trackers; the test kills the process group.
    os._exit(0)


if __name__ == "__main__":
    main()
