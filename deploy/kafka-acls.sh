#!/usr/bin/env bash
# Least-privilege ACLs for Aura Orchestrator on a Kafka cluster with an authorizer
# (KRaft's org.apache.kafka.metadata.authorizer.StandardAuthorizer). Three principals:
#
#   User:aura   the service: Read on every topic its topology reads (anomalies, context, results,
#               registry, flags, feedback, and votes once consensus reads them), Write on every
#               topic it writes (commands, correlations, dead letters, sagas, compensations,
#               escalations, and decisions once consensus writes them), Create on every topic it
#               makes sure exists; its internal topics, consumer groups and transactional ids by
#               the prefix <group.id>.
#   User:agent  agents: read commands and compensations (group aura-agents*); write results and
#               votes; register themselves on agent.registry.
#   User:tda    the TDA producer: writes anomalies and context.
#
# The rules are not written here: `aura topology acls` derives them from the topology the
# service declares (src/topology.rs), so a topic added there is granted here. Without an aura
# binary, the rules of the default configuration are read from deploy/kafka-acls.rules (a test
# keeps that file equal to what `aura topology acls` prints).
#
# Usage:
#   deploy/kafka-acls.sh --bootstrap-server HOST:PORT [--config aura.toml] [--rules FILE]
#                        [--command-config admin.properties] [--dry-run]
#
#   --config FILE    Aura's config: its [topics] names and kafka."group.id" (needs the aura binary)
#   --rules FILE     apply these rules (as `aura topology acls` prints them) instead
#   --dry-run        print the kafka-acls.sh commands instead of running them
#
# It runs Kafka's own kafka-acls.sh ($KAFKA_ACLS, default `kafka-acls.sh` on PATH) once per rule;
# adding an ACL that exists is a no-op, so the script can be run again after a change.
# Environment:
#   AURA_BIN (aura on PATH)  AGENTS_GROUP_ID (aura-agents: `aura agents --group-id`)
#   AURA_PRINCIPAL (User:aura)  AGENT_PRINCIPAL (User:agent)  TDA_PRINCIPAL (User:tda)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_ACLS=${KAFKA_ACLS:-kafka-acls.sh}
AURA_BIN=${AURA_BIN:-aura}
AGENTS_GROUP_ID=${AGENTS_GROUP_ID:-aura-agents}
AURA=${AURA_PRINCIPAL:-User:aura}
AGENT=${AGENT_PRINCIPAL:-User:agent}
TDA=${TDA_PRINCIPAL:-User:tda}

connection=()
config=""
rules_file=""
dry_run=false
while (($#)); do
    case $1 in
        --bootstrap-server) connection+=(--bootstrap-server "$2"); shift 2 ;;
        --command-config) connection+=(--command-config "$2"); shift 2 ;;
        --config) config=$2; shift 2 ;;
        --rules) rules_file=$2; shift 2 ;;
        --dry-run) dry_run=true; shift ;;
        -h | --help) sed -n '2,32p' "$0"; exit 0 ;;
        *) echo "kafka-acls: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done
[[ ${#connection[@]} -gt 0 ]] || { echo "kafka-acls: --bootstrap-server is required" >&2; exit 2; }

# The rules, one a line: PRINCIPAL OPERATIONS RESOURCE-TYPE PATTERN-TYPE NAME.
if [[ -n $rules_file ]]; then
    rules=$(<"$rules_file")
elif command -v "$AURA_BIN" >/dev/null 2>&1; then
    args=(topology acls --aura-principal "$AURA" --agent-principal "$AGENT"
        --tda-principal "$TDA" --agents-group "$AGENTS_GROUP_ID")
    [[ -z $config ]] || args+=(--config "$config")
    rules=$("$AURA_BIN" "${args[@]}") || { echo "kafka-acls: '$AURA_BIN topology acls' failed" >&2; exit 1; }
elif [[ -z $config && $AGENTS_GROUP_ID == aura-agents ]]; then
    echo "kafka-acls: no aura binary ($AURA_BIN); applying the default rules of $HERE/kafka-acls.rules" >&2
    rules=$(sed -e "s|^User:aura |$AURA |" -e "s|^User:agent |$AGENT |" -e "s|^User:tda |$TDA |" \
        "$HERE/kafka-acls.rules")
else
    echo "kafka-acls: reading --config or AGENTS_GROUP_ID needs the aura binary; set AURA_BIN to its path" >&2
    exit 2
fi

# Rules that differ only in their resource name share one kafka-acls.sh call (it takes several
# --topic), since each call starts a JVM.
declare -A names=()
order=()
count=0
while read -r principal operations resource pattern name; do
    [[ -z $principal || $principal == \#* ]] && continue
    case $resource in
        topic | group | transactional-id) ;;
        *) echo "kafka-acls: unknown resource type '$resource' in rule: $principal $operations $resource $pattern $name" >&2; exit 2 ;;
    esac
    key="$principal $operations $resource $pattern"
    [[ -v "names[$key]" ]] || order+=("$key")
    names[$key]+=" $name"
    count=$((count + 1))
done <<<"$rules"
((count > 0)) || { echo "kafka-acls: no rules to apply" >&2; exit 1; }

for key in "${order[@]}"; do
    read -r principal operations resource pattern <<<"$key"
    cmd=("$KAFKA_ACLS" "${connection[@]}" --add --allow-principal "$principal")
    IFS=, read -ra ops <<<"$operations"
    for op in "${ops[@]}"; do cmd+=(--operation "$op"); done
    read -ra resources <<<"${names[$key]}"
    for name in "${resources[@]}"; do cmd+=("--$resource" "$name"); done
    cmd+=(--resource-pattern-type "$pattern")
    if $dry_run; then
        printf '%q ' "${cmd[@]}"
        echo
    else
        "${cmd[@]}" >/dev/null
    fi
done

$dry_run || echo "kafka-acls: $count ACL rules for $AURA, $AGENT and $TDA are in place" >&2
