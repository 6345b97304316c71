// Package rooms is Cầu's meeting domain and its durable store: the site tree
// (central → province → district → commune, any depth), endpoints, scheduled
// meetings, floor control, roll call and the audit log.
//
// The package knows nothing of WebRTC, HTTP or tokens. Callers (signaling, the REST
// API, the CLI) authenticate users and hand this package an [Actor]: a role and a
// site. Everything here is plain data plus rules over it; persistence lives behind the
// [Store] interface, implemented by rooms/store/bolt (embedded, the default) and
// rooms/store/redis (several signaling nodes), both checked by rooms/storetest.
//
// Times are stored in UTC and shown in Asia/Ho_Chi_Minh (UTC+7, no daylight saving);
// see [Zone].
package rooms
