/** Limits on everything a client controls. Shared so that the client validates before sending. */
export const LIMITS = {
  emailMax: 254,
  passwordMin: 10,
  /** argon2 hashes whatever it is given: cap the work an attacker can ask for */
  passwordMax: 256,
  displayNameMin: 1,
  displayNameMax: 64,
  searchMax: 100,
  pageSizeDefault: 20,
  pageSizeMax: 100,
  userAgentMax: 512,
  roomNameMax: 80,
  roomTopicMax: 280,
  chatMessageMax: 2000,
  /** messages a reconnecting client receives at most in one catch-up; it pages the rest over HTTP */
  catchUpMax: 500,
  /** largest message `seq` (a PostgreSQL integer) */
  seqMax: 2_147_483_647,
  /** rooms one socket may have joined at once */
  roomsPerSocket: 20,
  /** longest question to the tutor, in characters */
  questionMax: 2000,
  /** longest notebook cell or exercise attempt sent with a question, in characters */
  tutorCodeMax: 10_000,
  /** exercise attempts sent with a question (the latest ones) */
  tutorAttemptsMax: 5,
  /** longest comment on an answer's rating */
  feedbackCommentMax: 1000,
  /** answers that may wait in one room's queue */
  tutorQueueMax: 20,
  /** default HTTP request body limit in bytes (config can lower or raise it) */
  bodyBytes: 64 * 1024,
} as const;
