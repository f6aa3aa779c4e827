/**
 * Stable error codes. The server answers every failure with one of these (HTTP problem+json `code`, or a
 * socket ack `error.code`); clients switch on the code, never on the message.
 */
export const ERROR_CODES = {
  invalid_input: 400,
  unauthenticated: 401,
  invalid_credentials: 401,
  session_expired: 401,
  forbidden: 403,
  csrf: 403,
  account_disabled: 403,
  muted: 403,
  banned: 403,
  chat_locked: 409,
  room_closed: 409,
  tutor_off: 409,
  not_found: 404,
  conflict: 409,
  last_admin: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  headers_too_large: 431,
  rate_limited: 429,
  too_many_rooms: 429,
  locked_out: 429,
  internal: 500,
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** English titles used in problem+json `title`; the client translates from the code. */
export const ERROR_TITLES: Record<ErrorCode, string> = {
  invalid_input: "The request is not valid",
  unauthenticated: "Authentication required",
  invalid_credentials: "Wrong email or password",
  session_expired: "Your session has expired",
  forbidden: "You are not allowed to do this",
  csrf: "Cross-site request refused",
  account_disabled: "This account is disabled",
  muted: "You are muted in this room",
  banned: "You are banned from this room",
  chat_locked: "The chat of this room is locked",
  room_closed: "This room's session has ended or the room is archived",
  tutor_off: "The tutor is off in this room",
  not_found: "Not found",
  conflict: "Conflict",
  last_admin: "The last administrator cannot be removed",
  payload_too_large: "The request body is too large",
  unsupported_media_type: "Unsupported content type",
  headers_too_large: "The request line or headers are too large",
  rate_limited: "Too many requests",
  too_many_rooms: "This connection has joined too many rooms",
  locked_out: "Too many failed attempts",
  internal: "Internal error",
  unavailable: "Service unavailable",
};

/** One offending field of an `invalid_input` error. `path` is dotted, e.g. `body.email`. */
export interface FieldError {
  path: string;
  message: string;
}
