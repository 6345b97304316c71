package sipgw_test

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/turnserver"
)

// baresip is a real SIP softphone (Debian package baresip, with baresip-ffmpeg for
// H.264), driven through its stdin console: it stands in for a room's hardware codec.
// Its camera is the fakevideo module's test picture and its microphone a 440 Hz sine;
// what it receives is decoded, the audio dumped to a WAV file (sndfile module) and a
// decoded picture saved on /snapshot (snapshot module).
type baresip struct {
	t     testing.TB
	dir   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *testutil.LockedBuffer
}

// needBaresip skips the test when baresip or its H.264 codec is missing, and fails it
// under CI=true (.ci/run installs baresip and baresip-ffmpeg).
func needBaresip(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("baresip")
	if err == nil {
		_, err = os.Stat(filepath.Join(baresipModules, "avcodec.so"))
	}
	if err != nil {
		testutil.Missing(t, "baresip with its ffmpeg codecs ("+err.Error()+")", "baresip baresip-ffmpeg")
	}
	return bin
}

const baresipModules = "/usr/lib/baresip/modules"

// startBaresipAt writes a config directory and starts baresip with it, listening for
// calls on listen (ip:port, UDP and TCP); display is the caller's display name (its From
// header).
func startBaresipAt(t testing.TB, display, listen string) *baresip {
	t.Helper()
	return startBaresipWith(t, display, listen, "")
}

// startBaresipWith is startBaresipAt with more account parameters (";auth_pass=…").
func startBaresipWith(t testing.TB, display, listen, account string) *baresip {
	t.Helper()
	return startBaresipAudio(t, display, listen, account, "g711.so")
}

// startBaresipAudio is startBaresipWith with audioCodec the one audio codec module
// loaded (g711.so: PCMU and PCMA; g722.so), and extra lines of configuration.
func startBaresipAudio(t testing.TB, display, listen, account, audioCodec string, extra ...string) *baresip {
	t.Helper()
	bin := needBaresip(t)
	dir := t.TempDir()
	config := strings.Join([]string{
		"poll_method epoll",
		"sip_listen " + listen,
		"audio_player aubridge,nil",
		"audio_source ausine,440",
		"audio_alert aubridge,nil",
		"ausrc_srate 48000",
		"ausrc_channels 2",
		"auplay_srate 48000",
		"video_source fakevideo,nil",
		"video_display fakevideo,nil",
		"video_size 320x240",
		"video_fps 15",
		"video_bitrate 300000",
		"module_path " + baresipModules,
		"module stdio.so",
		"module " + audioCodec,
		"module avcodec.so",
		"module ausine.so",
		"module aubridge.so",
		"module fakevideo.so",
		"module sndfile.so",
		"snd_path " + dir,
		"module snapshot.so",
		"module srtp.so", // used by an account with ;mediaenc=srtp-mand
		"module_app account.so",
		"module_app menu.so",
		"module_app contact.so",
		"sip_verify_server no",
		strings.Join(extra, "\n"),
		"",
	}, "\n")
	files := map[string]string{
		"config":   config,
		"accounts": fmt.Sprintf("%q <sip:room@127.0.0.1>;regint=0;answermode=auto%s\n", display, account),
		"contacts": "",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b := &baresip{t: t, dir: dir, out: &testutil.LockedBuffer{}}
	b.cmd = exec.Command(bin, "-f", dir)
	b.cmd.Dir = dir // snapshots are written to the working directory
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var err error
	if b.stdin, err = b.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.stdin.Close()
		_ = b.cmd.Process.Kill()
		_ = b.cmd.Wait()
		if t.Failed() {
			t.Logf("baresip output:\n%s", b.out.String())
		}
	})
	testutil.Eventually(t, 10*time.Second, func() string {
		if !strings.Contains(b.out.String(), "baresip is ready") {
			return "baresip did not start"
		}
		return ""
	})
	return b
}

// command types one console command.
func (b *baresip) command(cmd string) {
	b.t.Helper()
	if _, err := io.WriteString(b.stdin, cmd+"\n"); err != nil {
		b.t.Fatalf("baresip %s: %v", cmd, err)
	}
}

// established reports whether the call is up.
func (b *baresip) established() bool { return strings.Contains(b.out.String(), "Call established") }

// calls counts the calls established so far.
func (b *baresip) calls() int { return strings.Count(b.out.String(), "Call established") }

// statusRE reads baresip's call status line: bit rates sent/received and frame rates
// encoded/decoded.
var statusRE = regexp.MustCompile(`audio=(\d+)/(\d+) video=(\d+)/(\d+) \(bit/s\) efps=([\d.]+)/([\d.]+)`)

// decodedFPS is the video frame rate baresip last reported decoding.
func (b *baresip) decodedFPS() float64 {
	all := statusRE.FindAllStringSubmatch(b.out.String(), -1)
	if len(all) == 0 {
		return 0
	}
	f, _ := strconv.ParseFloat(all[len(all)-1][6], 64)
	return f
}

// receivedSnapshot is the path of a picture baresip decoded from the call ("" if none).
func (b *baresip) receivedSnapshot() string {
	m, _ := filepath.Glob(filepath.Join(b.dir, "snapshot-recv-*.png"))
	for _, p := range m {
		if st, err := os.Stat(p); err == nil && st.Size() > 0 {
			return p
		}
	}
	return ""
}

// decodedAudioPeak is the largest sample magnitude in the audio baresip decoded from
// the call (its sndfile dump, 16-bit PCM after a 44-byte header).
func (b *baresip) decodedAudioPeak() int {
	m, _ := filepath.Glob(filepath.Join(b.dir, "dump-*-dec.wav"))
	peak := 0
	for _, p := range m {
		data, err := os.ReadFile(p)
		if err != nil || len(data) <= 44 {
			continue
		}
		for i := 44; i+1 < len(data); i += 2 {
			s := int(int16(binary.LittleEndian.Uint16(data[i:])))
			peak = max(peak, s, -s)
		}
	}
	return peak
}

func itoa(n int) string { return strconv.Itoa(n) }

// serverTLS is a TLS configuration with a self-signed certificate for 127.0.0.1: the
// gateway's, in tests (baresip is told not to verify it).
func serverTLS(t testing.TB) *tls.Config {
	t.Helper()
	cert, err := turnserver.SelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}
