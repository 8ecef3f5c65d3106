import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

/**
 * Structured JSON logs on stdout. Request headers and anything named like a credential are redacted
 * wherever they appear, so a logged error or object cannot carry a token.
 */
export function createLogger(level: LevelWithSilent = "info", destination?: NodeJS.WritableStream): Logger {
  const options = {
    level,
    base: { component: "azure-image-operator" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    redact: {
      paths: [
        "*.authorization",
        "*.headers.authorization",
        "*.token",
        "*.accessToken",
        "*.clientSecret",
        "*.password",
        "*.sasToken",
        "*.sas",
      ],
      censor: "[redacted]",
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
