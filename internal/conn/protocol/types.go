package protocol

// Message types: the "type" member of every message.
const (
	// Client → server (each has a built-in schema in internal/conn/schema/builtin).
	TypePing        = "ping"
	TypePong        = "pong"
	TypeRefresh     = "refresh"
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	TypePublish     = "publish"
	TypeChat        = "chat"
	TypeData        = "data"
	TypeCommand     = "command"
	TypePresence    = "presence"
	TypeHistory     = "history"

	// Server → client.
	TypeWelcome        = "welcome"
	TypeRefreshed      = "refreshed"
	TypeAck            = "ack"
	TypeMessage        = "message"
	TypeJoined         = "joined"
	TypeLeft           = "left"
	TypeRecoveryFailed = "recovery_failed"
	TypeCommandResult  = "command_result"
	TypeError          = "error"

	// TypeRaw labels gateway messages passed through without a type (metrics).
	TypeRaw = "raw"
)

// ClientTypes lists the client → server types, each with a built-in schema.
var ClientTypes = []string{TypePing, TypePong, TypeRefresh, TypeSubscribe, TypeUnsubscribe, TypePublish,
	TypeChat, TypeData, TypeCommand, TypePresence, TypeHistory}
