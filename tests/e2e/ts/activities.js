async function charge(card) {
  return `charged ${card}`;
}

module.exports = { charge };
