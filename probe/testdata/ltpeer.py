#!/usr/bin/python3
"""A libtorrent-rasterbar seed on loopback for btda's interoperability test.

usage: ltpeer.py DIR MODE    (MODE: encrypted = MSE forced both ways, over TCP only;
                                   utp = uTP only, plaintext allowed)

Writes DIR/payload.bin and DIR/payload.torrent, seeds it, prints "PORT <n>" once
listening, then reads commands from stdin: "connect HOST PORT" makes it dial a peer.
It exits when stdin closes. Never leaves loopback: DHT, LSD, UPnP and NAT-PMP are off.
"""
import os
import sys
import time

import libtorrent as lt

PIECE = 16 << 10
PIECES = 48


def main():
    d, mode = sys.argv[1], sys.argv[2]
    data = os.urandom(PIECE * PIECES)
    with open(os.path.join(d, "payload.bin"), "wb") as f:
        f.write(data)
    fs = lt.file_storage()
    lt.add_files(fs, os.path.join(d, "payload.bin"))
    ct = lt.create_torrent(fs, PIECE)
    lt.set_piece_hashes(ct, d)
    tor = ct.generate()
    with open(os.path.join(d, "payload.torrent"), "wb") as f:
        f.write(lt.bencode(tor))

    settings = {
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "alert_mask": 0,
        # Reconnect at once when told to (default 60 s after a connection to that peer ended).
        "min_reconnect_time": 1,
    }
    if mode == "encrypted":
        forced = int(lt.enc_policy.forced)
        settings.update({"out_enc_policy": forced, "in_enc_policy": forced,
                         "allowed_enc_level": int(lt.enc_level.both),
                         "enable_outgoing_utp": False, "enable_incoming_utp": False})
    elif mode == "utp":
        settings.update({"enable_outgoing_tcp": False, "enable_incoming_tcp": False})
    else:
        sys.exit("unknown mode " + mode)
    ses = lt.session(settings)
    h = ses.add_torrent({"ti": lt.torrent_info(tor), "save_path": d})
    for _ in range(200):  # bounded: 20 s
        if h.status().is_seeding and ses.listen_port() > 0:
            break
        time.sleep(0.1)
    else:
        sys.exit("libtorrent did not start seeding")
    print("PORT %d" % ses.listen_port(), flush=True)
    for line in sys.stdin:
        f = line.split()
        if len(f) == 3 and f[0] == "connect":
            h.connect_peer((f[1], int(f[2])))
    del ses


if __name__ == "__main__":
    main()
