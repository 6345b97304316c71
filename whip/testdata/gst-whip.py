#!/usr/bin/python3
"""A minimal GStreamer (webrtcbin) WHIP publisher, as an encoder built on GStreamer is.

Debian 12's simple-whip-client cannot run (it links libsoup2 while webrtcbin's libnice
pulls in libsoup3, and libsoup aborts), so the test drives webrtcbin through this script:
HTTP with urllib, media with GStreamer. Usage: gst-whip.py URL TOKEN. It publishes a VP8
test pattern and an Opus tone, prints the resource URL, and on SIGINT or SIGTERM sends
DELETE and exits.
"""
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

PIPELINE = (
    "webrtcbin name=w bundle-policy=max-bundle "
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 ! videoconvert ! "
    "queue ! vp8enc deadline=1 cpu-used=8 keyframe-max-dist=30 ! rtpvp8pay pt=96 ! "
    "application/x-rtp,media=video,encoding-name=VP8,payload=96 ! w. "
    "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! queue ! opusenc ! rtpopuspay pt=111 ! "
    "application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! w."
)


def main():
    url, token = sys.argv[1], sys.argv[2]
    Gst.init(None)
    pipe = Gst.parse_launch(PIPELINE)
    w = pipe.get_by_name("w")
    loop = GLib.MainLoop()
    state = {"location": None, "sent": False}

    def request(method, target, body=None):
        req = urllib.request.Request(target, data=body, method=method)
        req.add_header("Authorization", "Bearer " + token)
        if body is not None:
            req.add_header("Content-Type", "application/sdp")
        return urllib.request.urlopen(req, timeout=20)

    def publish():
        offer = w.get_property("local-description").sdp.as_text()
        try:
            resp = request("POST", url, offer.encode())
        except urllib.error.HTTPError as e:
            print("WHIP POST refused:", e.code, e.read().decode(), flush=True)
            loop.quit()
            return False
        state["location"] = urllib.parse.urljoin(url, resp.headers["Location"])
        print("published:", resp.status, state["location"], flush=True)
        _, msg = GstSdp.SDPMessage.new_from_text(resp.read().decode())
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        w.emit("set-remote-description", answer, None)
        return False

    def gathering(element, _pspec):
        # Not trickling: the offer goes out once it holds every candidate.
        if element.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE and not state["sent"]:
            state["sent"] = True
            GLib.idle_add(publish)

    def offer_created(promise, _):
        promise.wait()
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply else None
        if offer is None:
            print("create-offer failed:", reply.to_string() if reply else None, flush=True)
            loop.quit()
            return
        w.emit("set-local-description", offer, None)

    def negotiate():
        # Once, after start: both sources are linked by then (on-negotiation-needed
        # fires per pad, and two offers in flight race in webrtcbin 1.22).
        w.emit("create-offer", None, Gst.Promise.new_with_change_func(offer_created, None))
        return False

    def stop(*_):
        if state["location"]:
            try:
                print("DELETE:", request("DELETE", state["location"]).status, flush=True)
            except urllib.error.URLError as e:
                print("DELETE failed:", e, flush=True)
        loop.quit()

    w.connect("notify::ice-gathering-state", gathering)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, stop)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, stop)
    pipe.set_state(Gst.State.PLAYING)
    GLib.idle_add(negotiate)
    loop.run()
    pipe.set_state(Gst.State.NULL)


if __name__ == "__main__":
    main()
