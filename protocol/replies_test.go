package protocol

import "testing"

// TestReplies: each request gets its own id and only its own reply; a reply nobody waits
// for (unknown id, no id, after done) is not delivered, and a second reply never blocks.
func TestReplies(t *testing.T) {
	var r Replies
	id1, reply1, done1 := r.Expect()
	id2, reply2, done2 := r.Expect()
	defer done2()
	if id1 == id2 {
		t.Fatalf("two requests share id %q", id1)
	}
	if !r.Deliver(Envelope{ID: id2, Kind: KindPong}) {
		t.Fatal("the reply to a waiting request was not delivered")
	}
	if env := <-reply2; env.ID != id2 {
		t.Fatalf("request %s got the reply to %s", id2, env.ID)
	}
	if len(reply1) != 0 {
		t.Fatal("request 1 got a reply meant for request 2")
	}
	for range 2 { // the first fills the reply's buffer again, the second must not block
		if !r.Deliver(Envelope{ID: id2}) {
			t.Fatal("a further reply to a waiting request was not taken (it must be dropped, not block)")
		}
	}
	if r.Deliver(Envelope{ID: "nobody"}) || r.Deliver(Envelope{}) {
		t.Fatal("a reply nobody waits for was delivered")
	}
	done1()
	if r.Deliver(Envelope{ID: id1}) {
		t.Fatal("a reply after done was delivered")
	}
}
