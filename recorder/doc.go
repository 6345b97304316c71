// Package recorder records a meeting at a bridge, without a browser: each source (a site's
// camera and microphone, a screen share) is written to its own Matroska/WebM file (Opus
// audio, VP8 video, H.264 in Matroska when negotiated) from the RTP the bridge receives,
// through an in-process tap (sfu.Tap) whose bounded queue never holds up forwarding.
//
// Frames are rebuilt from RTP with pion's samplebuilder and placed on the publisher's
// wall clock through its RTCP sender reports (NTP ↔ RTP), so a source's audio and video
// line up in its file, and the manifest gives each file's start on the server's clock so
// that files of different sources line up with each other and with the meeting timeline.
// A video track starts at a keyframe, asked for when recording starts and again after
// any loss the bridge could not repair; a resolution change needs nothing (VP8 and H.264
// keyframes carry their size). Clusters are written as they fill and flushed to the
// file every second, so a crash leaves files that play up to the last second; a clean
// stop adds the duration and a seek index (Cues).
//
// Layout of a recording directory (see [Manifest]):
//
//	recording.json      the manifest: files, their sources, start times and figures
//	<source>-<n>.webm   one file per source and part (a part ends when its tracks change)
package recorder
