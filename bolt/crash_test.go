package bolt

const helperEnv = "KEYGATE_BOLT_HELPER"
