/**
 * The notebook sync endpoint: the standard y-websocket protocol on `/collab/<notebookId>`, with our limits and
 * close codes. Any Yjs client (y-websocket's `WebsocketProvider` among them) connects with no custom code.
 */

export const COLLAB_PATH = "/collab/";

/** y-websocket message types (the first varUint of each binary message). */
export const MESSAGE = { sync: 0, awareness: 1, auth: 2, queryAwareness: 3 } as const;

export const NOTEBOOK_LIMITS = {
  /** largest binary message (one Yjs update or awareness update), in bytes */
  messageBytes: 256 * 1024,
  /** largest document: its stored state plus every update since, in bytes */
  documentBytes: 4 * 1024 * 1024,
  /** messages per connection: a bucket of `burst` refilled at `perSecond` */
  messagesPerSecond: 60,
  messagesBurst: 200,
  /** longest version name */
  versionNameMax: 80,
} as const;

/**
 * Close codes the server ends a connection with. 4000–4999 are ours; 1001 and 1009 are the standard ones the
 * WebSocket layer uses (server going away, frame over `messageBytes`).
 */
export const CLOSE = {
  /** the server is shutting down: reconnect (to another node) */
  goingAway: 1001,
  /** a frame larger than `messageBytes` */
  frameTooLarge: 1009,
  /** a message the protocol does not allow, or bytes that do not decode */
  malformed: 4400,
  /** the session behind the connection ended (logout, revocation, disabled user) */
  sessionEnded: 4401,
  /** no longer a member of the notebook's room (removed, banned, room archived) */
  accessRevoked: 4403,
  /** an update larger than `messageBytes`, or one that would take the document past `documentBytes` */
  tooLarge: 4413,
  /** more messages than `messagesPerSecond` allows */
  rateLimited: 4429,
} as const;

/** The reason sent (y-websocket "permission denied" auth message) when a read-only client's edit is dropped. */
export const READ_ONLY_REASON = "read-only";
